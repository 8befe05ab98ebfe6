import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  advertisedLanguages,
  broadSelector,
  documentWanted,
  parseLanguagesOutput,
  parseProblem,
  problemLevel,
  problemSettingId,
  selectorFor,
  type ServerLanguage,
} from '../src/protocol';
import { selects, serverLanguages } from './helpers';

const TWO: ServerLanguage[] = [
  { name: 'python', languageIds: ['python'], extensions: ['.py', '.pyi'] },
  { name: 'cpp', languageIds: ['cpp', 'c++'], extensions: ['.cpp', '.c++'] },
];

test('advertisedLanguages reads capabilities.experimental.codenook.languages', () => {
  assert.deepEqual(advertisedLanguages({ experimental: { codenook: { languages: TWO } } }), TWO);
  assert.equal(advertisedLanguages({}), undefined, 'an older server advertises nothing');
  assert.equal(advertisedLanguages(undefined), undefined);
  assert.equal(advertisedLanguages({ experimental: { codenook: { problems: true } } }), undefined);
  assert.deepEqual(
    advertisedLanguages({ experimental: { codenook: { languages: [{ name: 'x' }, 7, { name: 'go', languageIds: ['go'] }] } } }),
    [{ name: 'go', languageIds: ['go'], extensions: [] }],
    'malformed entries are left out, missing extensions are none',
  );
});

test('selectorFor: every language id in files and untitled documents, plus the extensions', () => {
  const selector = selectorFor(TWO);
  assert.deepEqual(selector, [
    { scheme: 'file', language: 'python' },
    { scheme: 'untitled', language: 'python' },
    { scheme: 'file', language: 'cpp' },
    { scheme: 'untitled', language: 'cpp' },
    { scheme: 'file', language: 'c++' },
    { scheme: 'untitled', language: 'c++' },
    { scheme: 'file', pattern: '**/*.{py,pyi,cpp,c++}' },
  ]);
  assert.ok(selects(selector, { scheme: 'file', languageId: 'plaintext', path: '/w/x.c++' }), 'an unknown language goes by extension');
  assert.ok(!selects(selector, { scheme: 'file', languageId: 'markdown', path: '/w/README.md' }));
  assert.ok(!selects(selector, { scheme: 'untitled', languageId: 'plaintext', path: 'Untitled-1' }));
  assert.deepEqual(selectorFor([{ name: 'go', languageIds: ['go'], extensions: ['.go'] }]).at(-1), { scheme: 'file', pattern: '**/*.go' });
  assert.deepEqual(selectorFor([]), []);
});

test('the broad selector (before the initialize result) covers every file and untitled document', () => {
  assert.deepEqual(broadSelector(), [{ scheme: 'file' }, { scheme: 'untitled' }]);
});

test('the real server: its list selects Java, C, C++ and Lua files (and every language it has)', (t) => {
  const languages = serverLanguages();
  if (languages === undefined) {
    t.skip('no .venv/bin/codenook (run make install)');
    return;
  }
  const selector = selectorFor(languages);
  const docs = [
    { languageId: 'java', path: '/w/Main.java' },
    { languageId: 'c', path: '/w/main.c' },
    { languageId: 'cpp', path: '/w/main.cpp' },
    { languageId: 'lua', path: '/w/init.lua' },
    { languageId: 'typescriptreact', path: '/w/App.tsx' },
  ];
  for (const doc of docs) {
    assert.ok(selects(selector, { scheme: 'file', ...doc }), doc.languageId);
  }
  assert.ok(languages.length >= 10, `${languages.length} languages`);
  for (const language of languages) {
    for (const id of language.languageIds) {
      assert.ok(selects(selector, { scheme: 'file', languageId: id, path: '/w/x' }), id);
    }
    for (const ext of language.extensions) {
      assert.ok(selects(selector, { scheme: 'file', languageId: 'plaintext', path: `/w/x${ext}` }), ext);
    }
  }
});

test('parseProblem: the data the server sends, checked', () => {
  const problem = parseProblem({ type: 1, message: 'codenook: model unavailable: x', code: 'model-unavailable', setting: 'model.path' });
  assert.deepEqual(problem, { type: 1, message: 'codenook: model unavailable: x', code: 'model-unavailable', setting: 'model.path' });
  assert.equal(problemLevel(problem!), 'error');
  assert.equal(problemSettingId(problem!), 'codenook.model.path');
  const info = parseProblem({ type: 3, message: 'codenook: file too large', code: 'file-too-large', setting: null })!;
  assert.equal(problemLevel(info), 'info');
  assert.equal(problemSettingId(info), undefined);
  assert.equal(problemLevel(parseProblem({ type: 2, message: 'm', code: 'invalid-setting', setting: 'completion.maxLines' })!), 'warning');
  assert.equal(problemLevel(parseProblem({ type: 4, message: 'm', code: 'c', setting: null })!), 'info');
  assert.equal(parseProblem({ type: 1 }), undefined, 'no message');
  assert.equal(parseProblem(null), undefined);
  const odd = parseProblem({ type: 9, message: 'm', setting: 'x; rm' })!;
  assert.deepEqual(odd, { type: 1, message: 'm', code: '', setting: null }, 'an unknown type is an error; a bad setting is none');
});

test('parseLanguagesOutput: the list `codenook languages --json` prints, or why not', () => {
  assert.deepEqual(parseLanguagesOutput(`${JSON.stringify(TWO)}\n`), TWO);
  const notJson = parseLanguagesOutput('usage: codenook [-h] {serve,complete}\ncodenook: error: invalid choice');
  assert.ok(notJson instanceof Error);
  assert.match(notJson.message, /no JSON: usage: codenook/);
  assert.match((parseLanguagesOutput('') as Error).message, /printed nothing/);
  assert.match((parseLanguagesOutput('[]') as Error).message, /no language list/, 'an empty list would never start the server');
  assert.match((parseLanguagesOutput('{"python": 1}') as Error).message, /no language list/);
});

test('documentWanted: what the selector would select starts the server; nothing else does', () => {
  const file = (languageId: string, path: string, scheme = 'file') => ({ uri: { scheme, path }, languageId });
  assert.equal(documentWanted(TWO, file('python', '/w/a.py')), true);
  assert.equal(documentWanted(TWO, file('c++', '/w/a.weird')), true, 'by language id');
  assert.equal(documentWanted(TWO, file('plaintext', '/w/a.pyi')), true, 'by extension');
  assert.equal(documentWanted(TWO, file('plaintext', '/w/a.c++')), true);
  assert.equal(documentWanted(TWO, file('python', 'Untitled-1', 'untitled')), true);
  assert.equal(documentWanted(TWO, file('plaintext', 'x.py', 'untitled')), false, 'untitled documents go by language only');
  assert.equal(documentWanted(TWO, file('markdown', '/w/README.md')), false);
  assert.equal(documentWanted(TWO, file('git-commit', '/w/.git/COMMIT_EDITMSG')), false);
  assert.equal(documentWanted(TWO, file('plaintext', '/w/notpy')), false);
  assert.equal(documentWanted(TWO, file('python', '/w/a.py', 'git')), false, 'other schemes never');
  assert.equal(documentWanted(TWO, file('python', 'extension-output-codenook', 'output')), false);
  // The languages could not be asked: any file or untitled document (the old behaviour).
  assert.equal(documentWanted(undefined, file('markdown', '/w/README.md')), true);
  assert.equal(documentWanted(undefined, file('markdown', 'Untitled-1', 'untitled')), true);
  assert.equal(documentWanted(undefined, file('log', 'x', 'output')), false);
  // documentWanted and selectorFor agree on every document above.
  for (const d of [file('python', '/w/a.py'), file('plaintext', '/w/a.pyi'), file('markdown', '/w/README.md'), file('plaintext', 'x.py', 'untitled')]) {
    assert.equal(selects(selectorFor(TWO), { scheme: d.uri.scheme, languageId: d.languageId, path: d.uri.path }), documentWanted(TWO, d), d.uri.path);
  }
});
