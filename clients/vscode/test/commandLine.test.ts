import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  checkoutFallback,
  CommandLineError,
  findExecutable,
  folderHolding,
  formatCommand,
  languagesCommand,
  parseServerCommand,
  splitCommandLine,
} from '../src/commandLine';

test('splitCommandLine: words, quotes and escapes', () => {
  assert.deepEqual(splitCommandLine('codenook serve'), ['codenook', 'serve']);
  assert.deepEqual(splitCommandLine('  codenook   serve  '), ['codenook', 'serve']);
  assert.deepEqual(splitCommandLine('"/My Tools/codenook" serve'), ['/My Tools/codenook', 'serve']);
  assert.deepEqual(splitCommandLine("'/a b/c' --set 'model.path=~/x y.gguf'"), ['/a b/c', '--set', 'model.path=~/x y.gguf']);
  assert.deepEqual(splitCommandLine('a\\ b c'), ['a b', 'c']);
  assert.deepEqual(splitCommandLine('"say \\"hi\\"" x'), ['say "hi"', 'x']);
  assert.deepEqual(splitCommandLine('"" x'), ['', 'x']);
  assert.deepEqual(splitCommandLine('a"b c"d'), ['ab cd']);
  assert.deepEqual(splitCommandLine(''), []);
  assert.throws(() => splitCommandLine('"open'), CommandLineError);
  assert.throws(() => splitCommandLine("'open"), CommandLineError);
});

test('parseServerCommand: default, string, array', () => {
  assert.deepEqual(parseServerCommand(undefined), { command: 'codenook', args: ['serve'] });
  assert.deepEqual(parseServerCommand(''), { command: 'codenook', args: ['serve'] });
  assert.deepEqual(parseServerCommand('/v/bin/codenook serve --set completion.maxLines=2'), {
    command: '/v/bin/codenook',
    args: ['serve', '--set', 'completion.maxLines=2'],
  });
  assert.deepEqual(parseServerCommand(['/a b/codenook', 'serve']), { command: '/a b/codenook', args: ['serve'] });
});

test('parseServerCommand: bad values', () => {
  assert.throws(() => parseServerCommand(['codenook', 3]), /string or an array of strings/);
  assert.throws(() => parseServerCommand(42), /string or an array of strings/);
  assert.throws(() => parseServerCommand([]), /empty/);
  assert.throws(() => parseServerCommand('   '), /empty/);
});

test('parseServerCommand: ~, ${userHome}, ${workspaceFolder} and relative programs', () => {
  const ctx = { workspaceFolder: '/work/proj', home: '/home/me' };
  assert.deepEqual(parseServerCommand('~/codenook/.venv/bin/codenook serve', ctx), {
    command: '/home/me/codenook/.venv/bin/codenook',
    args: ['serve'],
  });
  assert.deepEqual(parseServerCommand('.venv/bin/codenook serve', ctx), { command: '/work/proj/.venv/bin/codenook', args: ['serve'] });
  assert.deepEqual(parseServerCommand('./bin/cn serve', ctx), { command: '/work/proj/bin/cn', args: ['serve'] });
  assert.deepEqual(parseServerCommand(['${workspaceFolder}/.venv/bin/codenook', 'serve', '--settings', '${userHome}/cn.json'], ctx), {
    command: '/work/proj/.venv/bin/codenook',
    args: ['serve', '--settings', '/home/me/cn.json'],
  });
  assert.deepEqual(parseServerCommand('codenook serve', ctx), { command: 'codenook', args: ['serve'] }, 'a bare name stays a PATH lookup');
  assert.deepEqual(parseServerCommand('.venv/bin/codenook serve', {}), { command: '.venv/bin/codenook', args: ['serve'] });
});

test('formatCommand quotes what needs quoting', () => {
  assert.equal(formatCommand({ command: '/v/bin/codenook', args: ['serve'] }), '/v/bin/codenook serve');
  assert.equal(formatCommand({ command: '/My Tools/codenook', args: ["it's"] }), "'/My Tools/codenook' 'it'\\''s'");
});

test('findExecutable: PATH lookup, explicit paths, not executable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'codenook-test-'));
  try {
    const exe = join(dir, 'codenook');
    writeFileSync(exe, '#!/bin/sh\n');
    chmodSync(exe, 0o755);
    const plain = join(dir, 'plain');
    writeFileSync(plain, '');
    chmodSync(plain, 0o644);
    assert.equal(findExecutable('codenook', `/nonexistent:${dir}`), exe);
    assert.equal(findExecutable('codenook', '/nonexistent'), undefined);
    assert.equal(findExecutable('codenook', undefined), undefined);
    assert.equal(findExecutable(exe, ''), exe);
    assert.equal(findExecutable(join(dir, 'missing'), ''), undefined);
    assert.equal(findExecutable(dir, ''), undefined, 'a directory is not a program');
    assert.equal(findExecutable(plain, ''), undefined, 'a file without an x bit is not a program');
    assert.equal(findExecutable('x', '/a:/b', (f) => f === '/b/x'), '/b/x');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkoutFallback: only for the default command, only when the checkout has a codenook', () => {
  const exists = (f: string) => f === '/src/codenook/.venv/bin/codenook';
  const expected = { command: '/src/codenook/.venv/bin/codenook', args: ['serve'] };
  assert.deepEqual(checkoutFallback(undefined, '/src/codenook', exists), expected);
  assert.deepEqual(checkoutFallback('codenook serve', '/src/codenook', exists), expected);
  assert.equal(checkoutFallback('codenook serve --set trace.prompts=true', '/src/codenook', exists), undefined);
  assert.equal(checkoutFallback(['codenook', 'serve'], '/src/codenook', exists), undefined);
  assert.equal(checkoutFallback(undefined, '/elsewhere', exists), undefined);
  assert.equal(checkoutFallback(undefined, undefined, exists), undefined);
});

test('languagesCommand: languages --json in place of serve and its flags; none without serve', () => {
  assert.deepEqual(languagesCommand({ command: '/v/bin/codenook', args: ['serve'] }), { command: '/v/bin/codenook', args: ['languages', '--json'] });
  assert.deepEqual(
    languagesCommand({ command: '/v/bin/codenook', args: ['serve', '--set', 'model.path=/m.gguf', '--stdio'] }),
    { command: '/v/bin/codenook', args: ['languages', '--json'] },
  );
  assert.deepEqual(languagesCommand({ command: 'python3', args: ['-m', 'codenook', 'serve'] }), { command: 'python3', args: ['-m', 'codenook', 'languages', '--json'] });
  assert.deepEqual(languagesCommand({ command: 'uv', args: ['run', 'codenook', 'serve'] }), { command: 'uv', args: ['run', 'codenook', 'languages', '--json'] });
  assert.equal(languagesCommand({ command: '/usr/local/bin/codenook-wrapper', args: [] }), undefined);
  assert.equal(languagesCommand({ command: 'ssh', args: ['box', 'codenook-serve'] }), undefined);
});

test('folderHolding: inside a folder, through links, and not a sibling with the same prefix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'codenook-folders-'));
  try {
    const ws = join(dir, 'ws');
    const outside = join(dir, 'outside');
    mkdirSync(join(ws, '.venv', 'bin'), { recursive: true });
    mkdirSync(outside);
    mkdirSync(join(dir, 'ws-other'));
    writeFileSync(join(ws, '.venv', 'bin', 'codenook'), '');
    writeFileSync(join(outside, 'codenook'), '');
    symlinkSync(join(ws, '.venv', 'bin', 'codenook'), join(outside, 'into-ws'));
    symlinkSync(join(outside, 'codenook'), join(ws, 'to-outside'));
    assert.equal(folderHolding(join(ws, '.venv', 'bin', 'codenook'), [outside, ws]), ws);
    assert.equal(folderHolding(join(ws, '.venv', 'bin', '..', 'bin', 'codenook'), [ws]), ws);
    assert.equal(folderHolding(join(outside, 'codenook'), [ws]), undefined);
    assert.equal(folderHolding(join(dir, 'ws-other', 'x'), [ws]), undefined, 'ws-other is not inside ws');
    assert.equal(folderHolding(join(outside, 'into-ws'), [ws]), ws, 'a link into the workspace is in it');
    assert.equal(folderHolding(join(ws, 'to-outside'), [ws]), undefined, 'a link out of it is not');
    assert.equal(folderHolding(join(ws, 'x'), []), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
