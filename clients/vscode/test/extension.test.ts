// The extension's wiring, against fakes of `vscode` and `vscode-languageclient/node`.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { activate, type Controller, deactivate } from '../src/extension';
import { errors, LanguageClient, server } from './fake/languageclient';
import { fake } from './fake/vscode';
import { contributedDefaults, packageJson, selects, serverLanguages } from './helpers';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
let controller: Controller;
let subscriptions: { dispose(): void }[];

function statusItem() {
  assert.equal(fake.statusItems.length, 1);
  return fake.statusItems[0];
}

async function start(settings: Record<string, unknown> = {}): Promise<Controller> {
  for (const [k, v] of Object.entries(settings)) {
    fake.settings.set(k, v);
  }
  subscriptions = [];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  controller = activate({ subscriptions } as any);
  await controller.settled();
  return controller;
}

beforeEach(() => {
  fake.reset();
  server.reset();
  for (const [k, v] of contributedDefaults()) {
    fake.settings.set(k, v);
  }
  // A program that exists, so the PATH check passes; the fake client never runs it.
  fake.settings.set('serverCommand', [process.execPath, 'serve']);
  server.handlers.set('codenook/stats', () => ({ state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null }));
});

afterEach(async () => {
  await deactivate();
  for (const s of subscriptions ?? []) {
    s.dispose();
  }
});

test('activation registers every command that package.json contributes, and only those', async () => {
  await start();
  const contributed = packageJson.contributes.commands.map((c) => c.command).sort();
  assert.deepEqual([...fake.commands.keys()].sort(), contributed);
  for (const binding of packageJson.contributes.keybindings) {
    assert.ok(contributed.includes(binding.command), binding.command);
  }
});

test('the server starts with serverCommand and the settings as initializationOptions', async () => {
  fake.workspaceFolders = [{ uri: { scheme: 'file', fsPath: '/work/proj' } }];
  await start({ 'completion.maxTokens': 16, enable: { '*': true } });
  const client = server.last;
  assert.equal(client.serverOptions.command, process.execPath);
  assert.deepEqual(client.serverOptions.args, ['serve']);
  assert.deepEqual(client.serverOptions.options, { cwd: '/work/proj' });
  const init = client.initializationOptionsSent as Record<string, Record<string, unknown>>;
  assert.equal(init.completion.maxTokens, 16);
  assert.equal(init.model.path, '');
  assert.equal('serverCommand' in init, false);
  assert.equal('enable' in init, false);
  assert.deepEqual(
    client.capabilitiesSent?.experimental,
    { other: true, codenook: { problems: true } },
    'asks for codenook/problem instead of window/showMessage, keeping other experimental fields',
  );
  // A server that advertises no languages (an older codenook) keeps getting every file.
  assert.deepEqual(client.clientOptions.documentSelector, [{ scheme: 'file' }, { scheme: 'untitled' }]);
});

const JAVA_C_CPP_LUA = [
  { languageId: 'java', path: '/w/Main.java' },
  { languageId: 'c', path: '/w/main.c' },
  { languageId: 'cpp', path: '/w/main.cpp' },
  { languageId: 'lua', path: '/w/init.lua' },
];

test('the documents follow the languages the server advertises: Java, C, C++ and Lua get suggestions', async (t) => {
  const languages = serverLanguages();
  if (languages === undefined) {
    t.skip('no .venv/bin/codenook (run make install)');
    return;
  }
  server.capabilities = { experimental: { codenook: { languages } } };
  await start();
  const client = server.last;
  const selector = client.clientOptions.documentSelector;
  const provide = client.clientOptions.middleware.provideInlineCompletionItems;
  const suggestion = { items: [{ insertText: 'return 0;' }] };
  for (const doc of JAVA_C_CPP_LUA) {
    assert.ok(selects(selector, { scheme: 'file', ...doc }), `${doc.languageId} is sent to the server`);
    assert.deepEqual(provide({ languageId: doc.languageId }, {}, {}, {}, () => suggestion), suggestion, doc.languageId);
  }
  assert.ok(!selects(selector, { scheme: 'file', languageId: 'markdown', path: '/w/README.md' }), 'markdown is not');
  assert.ok(fake.log.some((l) => /the server supports: python, .*java, c, cpp, lua/.test(l)), fake.log.join('\n'));
  server.handlers.set('codenook/stats', () => ({ state: 'idle' }));
  await fake.commands.get('codenook.showStatus')!();
  const labels = (fake.quickPicks[0].items as { label: string }[]).map((i) => i.label);
  assert.ok(labels.some((l) => l.startsWith('Languages: python') && l.includes('lua')), labels.join(' | '));
});

test('a restarted server narrows the selector again from its own answer', async () => {
  server.capabilities = { experimental: { codenook: { languages: [{ name: 'go', languageIds: ['go'], extensions: ['.go'] }] } } };
  await start();
  const first = server.last.clientOptions.documentSelector;
  assert.ok(selects(first, { scheme: 'file', languageId: 'go', path: '/w/a.go' }));
  server.capabilities = { experimental: { codenook: { languages: [{ name: 'lua', languageIds: ['lua'], extensions: ['.lua'] }] } } };
  await fake.commands.get('codenook.restartServer')!();
  const second = server.last.clientOptions.documentSelector;
  assert.ok(selects(second, { scheme: 'file', languageId: 'lua', path: '/w/a.lua' }));
  assert.ok(!selects(second, { scheme: 'file', languageId: 'go', path: '/w/a.go' }));
});

test('status bar: loading from the start-up poll, then idle and failed from notifications', async () => {
  await start();
  await tick();
  assert.equal(statusItem().text, '$(loading~spin) codenook: loading model');
  assert.ok(statusItem().visible);
  assert.deepEqual(server.last.requests[0], { method: 'codenook/stats', params: {} }, 'params {}, never missing');
  assert.equal(statusItem().command, 'codenook.showStatus');
  server.handlers.set('codenook/stats', () => ({ state: 'idle', model: '/m/small.gguf' }));
  server.last.notify('codenook/status', { state: 'idle', queueLength: 0, tokensPerSecond: 140.5, error: null });
  assert.equal(statusItem().text, '$(check) codenook: idle · 141 tok/s');
  assert.equal(statusItem().backgroundColor, undefined);
  await tick();
  assert.match(String(statusItem().tooltip), /Model: \/m\/small\.gguf/);
  server.last.notify('codenook/status', { state: 'failed', queueLength: 0, tokensPerSecond: 0, error: 'model file not found: /x' });
  assert.equal(statusItem().text, '$(warning) codenook: model failed');
  assert.equal(statusItem().backgroundColor?.id, 'statusBarItem.warningBackground');
  assert.match(String(statusItem().tooltip), /model file not found: \/x/);
});

test('a server command that does not exist: no client, a clear error, a button to the setting', async () => {
  fake.answerMessage = 'Open Setting';
  await start({ serverCommand: '/nonexistent/bin/codenook serve' });
  assert.equal(server.clients.length, 0);
  const error = fake.messages.find((m) => m.level === 'error');
  assert.ok(error, 'an error message is shown');
  assert.match(error.message, /'\/nonexistent\/bin\/codenook' does not exist or is not executable/);
  assert.match(error.message, /\.venv\/bin\/codenook serve/);
  assert.deepEqual(error.buttons, ['Open Setting', 'Show Output']);
  await tick();
  assert.deepEqual(
    fake.executed.find((e) => e.command === 'workbench.action.openSettings')?.args,
    ['codenook.serverCommand'],
  );
  assert.equal(statusItem().text, '$(error) codenook: not running');
  assert.equal(statusItem().backgroundColor?.id, 'statusBarItem.errorBackground');
});

test('a bare program name is looked up on PATH', async () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await start({ serverCommand: 'codenook serve' });
  } finally {
    process.env.PATH = path;
  }
  assert.equal(server.clients.length, 0);
  assert.match(fake.messages[0].message, /'codenook' was not found on PATH/);
});

test('a server that exits during start-up: a message with the command and the setting', async () => {
  server.startError = new Error('Connection to server got closed');
  await start();
  const error = fake.messages.find((m) => m.level === 'error');
  assert.ok(error);
  assert.match(error.message, /exited or failed during start-up/);
  assert.match(error.message, /serve/);
  assert.equal(server.last.disposed, true);
  assert.equal(statusItem().text, '$(error) codenook: not running');
  // The client's own generic notification for this case is kept out of the way of ours.
  server.last.error("codenook client: couldn't create connection to server.", undefined, 'force');
  server.last.error('Restarting server failed', undefined, 'force');
  assert.deepEqual(errors, [
    { message: "codenook client: couldn't create connection to server.", shown: false },
    { message: 'Restarting server failed', shown: true },
  ]);
  const closed = server.last.clientOptions.errorHandler.closed();
  assert.deepEqual(closed, { action: 1, handled: true }, 'never restarted while starting');
});

test('a crash after start-up restarts the server, but not forever', async () => {
  await start();
  const handler = server.last.clientOptions.errorHandler;
  for (let i = 0; i < 3; i++) {
    assert.equal(handler.closed().action, 2, 'restart');
  }
  assert.equal(handler.closed().action, 1, 'the fourth crash in 3 minutes stops it');
  assert.match(fake.messages.at(-1)?.message ?? '', /will not be restarted/);
});

test('a status notification that comes while start() finishes is not overwritten', async () => {
  server.handlers.set('codenook/stats', () => ({ state: 'starting' }));
  const original = LanguageClient.prototype.start;
  LanguageClient.prototype.start = async function (this: InstanceType<typeof LanguageClient>) {
    await original.call(this);
    this.notify('codenook/status', { state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null });
  };
  try {
    await start();
  } finally {
    LanguageClient.prototype.start = original;
  }
  assert.equal(statusItem().text, '$(loading~spin) codenook: loading model');
  assert.equal(server.last.requests.length, 0, 'no poll needed after a notification');
});

test('settings changes go to the server as didChangeConfiguration with only what changed', async () => {
  await start();
  const client = server.last;
  fake.changeSettings({ 'completion.maxTokens': 16 });
  assert.deepEqual(client.sent, [
    { method: 'workspace/didChangeConfiguration', params: { settings: { codenook: { completion: { maxTokens: 16 } } } } },
  ]);
  fake.changeSettings({ enable: { '*': false } });
  assert.equal(client.sent.length, 1, 'codenook.enable is not a server setting');
  fake.changeSettings({ 'completion.maxTokens': 16 });
  assert.equal(client.sent.length, 1, 'nothing changed, nothing sent');
});

test('changing serverCommand restarts the server with the new command', async () => {
  await start();
  const first = server.last;
  fake.changeSettings({ serverCommand: [process.execPath, 'serve', '--set', 'completion.maxLines=2'] });
  await controller.settled();
  assert.equal(first.disposed, true);
  assert.equal(server.clients.length, 2);
  assert.deepEqual(server.last.serverOptions.args, ['serve', '--set', 'completion.maxLines=2']);
});

test('workspace/configuration from the server gets the server keys only', async () => {
  await start({ 'model.path': '/m.gguf' });
  const middleware = server.last.clientOptions.middleware.workspace.configuration;
  const vscodeAnswer = [{ serverCommand: 'x', enable: {}, model: { path: '/m.gguf' } }, { tabSize: 4 }];
  const answers = await middleware(
    { items: [{ section: 'codenook' }, { section: 'editor' }] },
    undefined,
    async () => vscodeAnswer,
  );
  assert.equal(answers[0].model.path, '/m.gguf');
  assert.equal('serverCommand' in answers[0], false);
  assert.equal('enable' in answers[0], false);
  assert.deepEqual(answers[1], { tabSize: 4 });
});

test('codenook.enable turns inline suggestions off per language', async () => {
  await start({ enable: { '*': true, go: false } });
  const provide = server.last.clientOptions.middleware.provideInlineCompletionItems;
  const next = () => ['item'];
  assert.deepEqual(provide({ languageId: 'python' }, {}, {}, {}, next), ['item']);
  assert.equal(provide({ languageId: 'go' }, {}, {}, {}, next), null);
});

test('codenook/problem: shown by its type, "Open Setting" opens the setting it names', async () => {
  fake.answerMessage = 'Open Setting';
  await start();
  server.last.notify('codenook/problem', {
    type: 1,
    message: 'codenook: model unavailable: model file not found: /nope.gguf',
    code: 'model-unavailable',
    setting: 'model.path',
  });
  await tick();
  assert.deepEqual(fake.messages.at(-1), {
    level: 'error',
    message: 'codenook: model unavailable: model file not found: /nope.gguf',
    buttons: ['Open Setting', 'Show Output'],
  });
  assert.deepEqual(fake.executed.find((e) => e.command === 'workbench.action.openSettings')?.args, ['codenook.model.path']);
  assert.ok(fake.log.includes('error: codenook: model unavailable: model file not found: /nope.gguf [model-unavailable, setting model.path]'));

  // The wording plays no part: any message, the setting comes from the data.
  fake.executed = [];
  server.last.notify('codenook/problem', { type: 2, message: 'codenook: whatever it says', code: 'invalid-setting', setting: 'completion.maxLines' });
  await tick();
  assert.deepEqual(fake.messages.at(-1), { level: 'warning', message: 'codenook: whatever it says', buttons: ['Open Setting', 'Show Output'] });
  assert.deepEqual(fake.executed.find((e) => e.command === 'workbench.action.openSettings')?.args, ['codenook.completion.maxLines']);
});

test('codenook/problem without a setting: no "Open Setting", and "Show Output" shows the log', async () => {
  fake.answerMessage = 'Show Output';
  await start();
  let shown = 0;
  controller.output.show = () => {
    shown += 1;
  };
  server.last.notify('codenook/problem', {
    type: 3,
    message: 'codenook: model unavailable: setting model.path is mentioned in the text only',
    code: 'file-too-large',
    setting: null,
  });
  await tick();
  assert.deepEqual(fake.messages.at(-1)?.buttons, ['Show Output']);
  assert.equal(fake.messages.at(-1)?.level, 'info');
  assert.equal(shown, 1);
  assert.equal(fake.executed.filter((e) => e.command === 'workbench.action.openSettings').length, 0);
  server.last.notify('codenook/problem', { bogus: true });
  assert.equal(fake.messages.length, 1, 'malformed params are logged, not shown');
});

test('window/showMessage is left to the language client (the extension reads no wording)', async () => {
  await start();
  assert.equal(server.last.notificationHandlers.has('window/showMessage'), false);
  assert.ok(server.last.notificationHandlers.has('codenook/problem'));
});

test('Run agent task: a clear message when the server does not offer codenook.agentTask', async () => {
  server.capabilities = { executeCommandProvider: { commands: ['codenook.runAction'] } };
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.equal(fake.inputBoxes.length, 0, 'no input box for a command the server lacks');
  assert.match(fake.messages.at(-1)?.message ?? '', /not available in this server version/);
});

test('Run agent task: input box, then workspace/executeCommand codenook.agentTask', async () => {
  server.capabilities = { executeCommandProvider: { commands: ['codenook.agentTask'] } };
  server.handlers.set('workspace/executeCommand', () => ({ message: 'done: 2 files changed' }));
  fake.answerInputBox = 'add type hints';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  const request = server.last.requests.find((r) => r.method === 'workspace/executeCommand');
  assert.deepEqual(request?.params, { command: 'codenook.agentTask', arguments: [{ task: 'add type hints' }] });
  assert.equal(fake.messages.at(-1)?.message, 'codenook: done: 2 files changed');
});

test('the "Edit with instruction…" code action asks for the instruction first', async () => {
  fake.answerInputBox = 'use a set';
  await start();
  const executeCommand = server.last.clientOptions.middleware.executeCommand;
  const calls: unknown[] = [];
  await executeCommand('codenook.runAction', [{ action: 'instruct', uri: 'file:///a.py' }], async (c: string, a: unknown[]) => calls.push([c, a]));
  assert.deepEqual([...calls], [['codenook.runAction', [{ action: 'instruct', uri: 'file:///a.py', instruction: 'use a set' }]]]);
  fake.answerInputBox = undefined;
  await executeCommand('codenook.runAction', [{ action: 'instruct' }], async (c: string, a: unknown[]) => calls.push([c, a]));
  assert.equal(calls.length, 1, 'cancelled input box: nothing runs');
  await executeCommand('codenook.runAction', [{ action: 'docstring' }], async (c: string, a: unknown[]) => calls.push([c, a]));
  assert.equal(calls.length, 2);
});

test('Show status asks codenook/stats and lists a summary with actions', async () => {
  server.handlers.set('codenook/stats', () => ({ state: 'idle', tokensPerSecond: 50, model: '/m/q.gguf', architecture: 'qwen3next' }));
  await start();
  await fake.commands.get('codenook.showStatus')!();
  const labels = (fake.quickPicks[0].items as { label: string }[]).map((i) => i.label);
  assert.deepEqual(labels.slice(0, 2), ['State: idle · 50.0 tok/s', 'Model: q.gguf (qwen3next)']);
  assert.ok(labels.includes('$(debug-restart) Restart server'));
});

test('Restart server stops the old client and starts a new one', async () => {
  await start();
  const first = server.last;
  await fake.commands.get('codenook.restartServer')!();
  assert.equal(first.disposed, true);
  assert.equal(server.clients.length, 2);
  assert.equal(server.last.started, true);
});

test('accept word / line and suggest map to the built-in inline suggestion commands', async () => {
  await start();
  await fake.commands.get('codenook.acceptNextWord')!();
  await fake.commands.get('codenook.acceptNextLine')!();
  await fake.commands.get('codenook.triggerSuggestion')!();
  assert.deepEqual(
    fake.executed.map((e) => e.command),
    ['editor.action.inlineSuggest.acceptNextWord', 'editor.action.inlineSuggest.acceptNextLine', 'editor.action.inlineSuggest.trigger'],
  );
});
