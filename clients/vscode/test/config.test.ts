import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CLIENT_SETTINGS,
  changedSettings,
  configurationAnswer,
  didChangeConfigurationParams,
  initializationOptions,
  isLanguageEnabled,
  nest,
  readServerSettings,
  RESTRICTED_SETTINGS,
  SERVER_SETTINGS,
  withTrust,
} from '../src/config';
import { contributedDefaults, packageJson, repoRoot } from './helpers';

const defaults = contributedDefaults();
const get = (key: string) => defaults.get(key);

test('initializationOptions: every server key, nested, and none of the client-only keys', () => {
  const options = initializationOptions(get) as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(options).sort(), [
    'actions', 'agent', 'completion', 'context', 'documents', 'engine', 'hover', 'index', 'model', 'trace',
  ]);
  assert.equal(options.model.path, '', 'an unset model.path goes as "" (the server reads it as unset)');
  assert.equal(options.model.contextSize, 4096);
  assert.equal(options.completion.maxTokens, 64);
  assert.equal(options.trace.prompts, false);
  assert.equal(options.agent.edits, 'apply');
  assert.deepEqual(options.agent.allowCommands, [], 'a list setting goes as a list');
  assert.equal('serverCommand' in options, false);
  assert.equal('enable' in options, false);
  assert.equal('server' in options.trace, false, 'codenook.trace.server is the client\'s LSP trace');
  const flat = readServerSettings(get);
  assert.equal(Object.keys(flat).length, SERVER_SETTINGS.length);
});

test('readServerSettings leaves out undefined values and passes wrong types on to the server', () => {
  const values: Record<string, unknown> = { 'completion.maxTokens': 'lots', 'model.gpuLayers': -1 };
  const flat = readServerSettings((k) => values[k]);
  assert.deepEqual(flat, { 'model.gpuLayers': -1, 'completion.maxTokens': 'lots' });
});

test('nest turns dotted keys into objects', () => {
  assert.deepEqual(nest({ 'model.path': '/m.gguf', 'model.gpuLayers': -1, 'trace.prompts': true }), {
    model: { path: '/m.gguf', gpuLayers: -1 },
    trace: { prompts: true },
  });
  assert.deepEqual(nest({}), {});
});

test('a settings change sends only what changed, wrapped in a codenook section', () => {
  const before = readServerSettings(get);
  const after = { ...before, 'completion.maxTokens': 16, 'model.path': '~/m.gguf' };
  assert.deepEqual(didChangeConfigurationParams(before, after), {
    settings: { codenook: { model: { path: '~/m.gguf' }, completion: { maxTokens: 16 } } },
  });
  assert.equal(didChangeConfigurationParams(before, { ...before }), undefined);
});

test('a key that disappears is sent as the server default (the server keeps absent keys)', () => {
  assert.deepEqual(changedSettings({ 'completion.maxLines': 2 }, {}), { 'completion.maxLines': 8 });
  assert.deepEqual(changedSettings({ 'completion.maxLines': 8 }, {}), {});
  assert.deepEqual(changedSettings({ 'model.path': '/x' }, {}), { 'model.path': null });
});

test('workspace/configuration answers: codenook section without client keys, sub-sections, others', () => {
  const values = new Map(defaults);
  values.set('serverCommand', '/venv/bin/codenook serve');
  values.set('enable', { '*': false });
  values.set('model.path', '/m.gguf');
  const getter = (k: string) => values.get(k);
  const all = configurationAnswer('codenook', getter) as Record<string, Record<string, unknown>>;
  assert.equal(all.model.path, '/m.gguf');
  assert.equal('serverCommand' in all, false);
  assert.equal('enable' in all, false);
  assert.deepEqual(configurationAnswer(undefined, getter), all);
  assert.deepEqual(configurationAnswer('codenook.model', getter), all.model);
  assert.equal(configurationAnswer('codenook.model.path', getter), '/m.gguf');
  assert.equal(configurationAnswer('codenook.nothing', getter), null);
  assert.equal(configurationAnswer('editor', getter), undefined);
});

test('codenook.enable per language', () => {
  assert.equal(isLanguageEnabled({ '*': true }, 'python'), true);
  assert.equal(isLanguageEnabled({ '*': true, go: false }, 'go'), false);
  assert.equal(isLanguageEnabled({ '*': false, rust: true }, 'rust'), true);
  assert.equal(isLanguageEnabled({ '*': false }, 'python'), false);
  assert.equal(isLanguageEnabled({}, 'python'), true);
  assert.equal(isLanguageEnabled(undefined, 'python'), true);
  assert.equal(isLanguageEnabled(false, 'python'), false);
  assert.equal(isLanguageEnabled({ python: 'no' }, 'python'), true, 'a non-boolean never turns it off');
});

test('package.json contributes exactly the server keys plus serverCommand, enable and trace.server', () => {
  const props = packageJson.contributes.configuration.properties;
  const contributed = Object.keys(props).sort();
  const expected = [...SERVER_SETTINGS.map((s) => `codenook.${s.key}`), ...CLIENT_SETTINGS.map((k) => `codenook.${k}`)].sort();
  assert.deepEqual(contributed, expected);
  for (const spec of SERVER_SETTINGS) {
    const p = props[`codenook.${spec.key}`];
    assert.equal(p.type, spec.type, spec.key);
    assert.deepEqual(p.default, spec.default === null ? '' : spec.default, spec.key);
    assert.equal(p.minimum, spec.minimum, `${spec.key} minimum`);
    assert.equal(p.maximum, spec.maximum, `${spec.key} maximum`);
    assert.deepEqual((p as { enum?: string[] }).enum, spec.enum, `${spec.key} enum`);
    if (spec.type === 'array') {
      assert.deepEqual((p as { items?: unknown }).items, { type: 'string' }, `${spec.key} items`);
    }
    assert.ok((p.markdownDescription ?? p.description ?? '').length > 20, `${spec.key} has a description`);
  }
  assert.equal(props['codenook.serverCommand'].default, 'codenook serve');
  assert.deepEqual(props['codenook.serverCommand'].type, ['string', 'array']);
  assert.deepEqual(props['codenook.enable'].default, { '*': true });
  assert.equal(props['codenook.trace.server'].default, 'off');
});

test('the extension activates on any language: it copies no language list from the server', () => {
  // Activation only asks `codenook languages --json`; the server starts for a document of
  // those languages (see extension.test.ts).
  assert.deepEqual(packageJson.activationEvents, ['onLanguage']);
  const enable = packageJson.contributes.configuration.properties['codenook.enable'].markdownDescription ?? '';
  assert.doesNotMatch(enable, /`rust`|`go`|`python`/, 'codenook.enable does not list languages either');
});

test('the server in the repository still declares the same settings (drift check)', (t) => {
  const python = join(repoRoot, '.venv', 'bin', 'python');
  if (!existsSync(python)) {
    t.skip(`no ${python} (run make install): cannot compare with the server's SPECS`);
    return;
  }
  const script =
    'import json; from codenook.settings import SPECS; print(json.dumps([' +
    '{"key": s.key, "type": s.kind.__name__, "default": s.default, "minimum": s.minimum, "maximum": s.maximum,' +
    ' "choices": list(getattr(s, "choices", ()))} for s in SPECS]))';
  const specs = JSON.parse(execFileSync(python, ['-c', script], { encoding: 'utf8' })) as {
    key: string; type: string; default: unknown; minimum: number | null; maximum: number | null; choices: string[];
  }[];
  const kinds: Record<string, string> = { str: 'string', int: 'integer', bool: 'boolean', tuple: 'array' };
  const server = specs.map((s) => ({
    key: s.key,
    type: kinds[s.type] ?? s.type,
    default: s.default,
    minimum: s.minimum ?? undefined,
    maximum: s.maximum ?? undefined,
    enum: s.choices.length ? s.choices : undefined,
  }));
  const client = SERVER_SETTINGS.map((s) => ({
    key: s.key,
    type: s.type,
    default: s.default,
    minimum: s.minimum,
    maximum: s.maximum,
    enum: s.enum,
  }));
  assert.deepEqual(
    client,
    server,
    'server settings changed: update SERVER_SETTINGS in clients/vscode/src/config.ts and the ' +
      'contributes.configuration section of clients/vscode/package.json',
  );
});

test('withTrust: in Restricted Mode index.enabled reads false on every path to the server', () => {
  const values = new Map(defaults);
  values.set('index.enabled', true);
  values.set('model.path', '/m.gguf');
  const get = (k: string) => values.get(k);
  assert.deepEqual(RESTRICTED_SETTINGS, { 'index.enabled': false });
  assert.equal(withTrust(get, true), get, 'trusted: the settings as they are');
  const restricted = withTrust(get, false);
  assert.equal(restricted('index.enabled'), false);
  assert.equal(restricted('model.path'), '/m.gguf');
  const init = initializationOptions(restricted) as Record<string, Record<string, unknown>>;
  assert.equal(init.index.enabled, false);
  assert.equal((configurationAnswer('codenook', restricted) as Record<string, Record<string, unknown>>).index.enabled, false);
  assert.equal(configurationAnswer('codenook.index.enabled', restricted), false);
  // Trust granted: the change that turns indexing on.
  assert.deepEqual(didChangeConfigurationParams(readServerSettings(restricted), readServerSettings(get)), {
    settings: { codenook: { index: { enabled: true } } },
  });
});
