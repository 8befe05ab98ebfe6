// The extension's wiring, against fakes of `vscode` and `vscode-languageclient/node`.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { activate, type Controller, deactivate } from '../src/extension';
import { selectorFor, type ServerLanguage } from '../src/protocol';
import { errors, LanguageClient, ResponseError, server } from './fake/languageclient';
import { doc, fake } from './fake/vscode';
import { codenookBin, contributedDefaults, fakeCodenook, packageJson, selects, serverLanguages } from './helpers';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
let controller: Controller;
let subscriptions: { dispose(): void }[];
/** The stand-in `codenook` the tests' serverCommand runs (for `languages --json` only). */
let codenook: ReturnType<typeof fakeCodenook>;

/** What the fake `codenook languages --json` prints unless a test says otherwise. */
const FAKE_LANGUAGES: ServerLanguage[] = [
  { name: 'python', languageIds: ['python'], extensions: ['.py', '.pyi'] },
  { name: 'java', languageIds: ['java'], extensions: ['.java'] },
];

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
  // A program that exists and answers `languages --json`; the fake client never runs `serve`.
  codenook = fakeCodenook();
  process.env.CODENOOK_FAKE_LANGUAGES = JSON.stringify(FAKE_LANGUAGES);
  process.env.CODENOOK_FAKE_LOG = codenook.log;
  fake.settings.set('serverCommand', [codenook.program, 'serve']);
  // A Python file is open, so activation starts the server (see the tests of the lazy start).
  fake.documents = [doc('python', '/w/a.py')];
  server.handlers.set('codenook/stats', () => ({ state: 'loading', queueLength: 0, tokensPerSecond: 0, error: null }));
});

afterEach(async () => {
  await deactivate();
  for (const s of subscriptions ?? []) {
    s.dispose();
  }
  rmSync(codenook.dir, { recursive: true, force: true });
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
  fake.workspaceFolders = [{ uri: { scheme: 'file', fsPath: codenook.dir } }];
  await start({ 'completion.maxTokens': 16, enable: { '*': true } });
  const client = server.last;
  assert.equal(client.serverOptions.command, codenook.program);
  assert.deepEqual(client.serverOptions.args, ['serve']);
  assert.deepEqual(client.serverOptions.options, { cwd: codenook.dir });
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
  // The languages `codenook languages --json` printed, from the start; a server that
  // advertises none in its initialize result leaves them as they are.
  assert.deepEqual(client.clientOptions.documentSelector, selectorFor(FAKE_LANGUAGES));
  assert.deepEqual(codenook.calls(), ['languages --json'], 'asked once, with languages --json in place of serve');
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

test('an explicit request (next/previous inline suggestion) gets every item of the list, in order', async () => {
  await start();
  const provide = server.last.clientOptions.middleware.provideInlineCompletionItems;
  const list = { items: [{ insertText: 'a + b' }, { insertText: 'sum((a, b))' }, { insertText: 'b + a' }] };
  const seen: unknown[] = [];
  const invoke = { triggerKind: 0, selectedCompletionInfo: undefined }; // InlineCompletionTriggerKind.Invoke
  const next = (_d: unknown, _p: unknown, context: unknown) => {
    seen.push(context);
    return list;
  };
  assert.deepEqual(provide({ languageId: 'python' }, {}, invoke, {}, next), list);
  assert.deepEqual(seen, [invoke], 'the trigger kind reaches the server: it decides how many items to compute');
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
  // An answer without taskId and status (not the contract's): its message is still shown.
  assert.equal(fake.messages.at(-1)?.message, 'codenook: done: 2 files changed');
});

const AGENT_COMMANDS = { executeCommandProvider: { commands: ['codenook.agentTask', 'codenook.agentUndo'] } };
const AGENT_RESULT = {
  taskId: 'task-1',
  status: 'done',
  summary: 'Renamed old_name to new_name.',
  message: 'done in 3 steps',
  steps: 3,
  changes: [
    { uri: 'file:///w/main.py', path: 'main.py', created: false, original: 'def old_name():\n    pass\n' },
    { uri: 'file:///w/new.py', path: 'new.py', created: true, original: null },
  ],
};

/** A server that runs the task: transcript notifications while the request runs, then the answer. */
function agentServer(result: unknown = AGENT_RESULT, undo: unknown = { restored: ['file:///w/main.py'], refused: [], message: '' }) {
  server.handlers.set('workspace/executeCommand', async (params) => {
    const { command, arguments: args } = params as { command: string; arguments: { task?: string }[] };
    if (command === 'codenook.agentUndo') {
      return undo;
    }
    const note = (kind: string, text: string) => server.last.notify('codenook/agentTranscript', { taskId: 'task-1', kind, text });
    note('task', args[0].task ?? '');
    note('model', 'Reading ');
    note('model', 'the file.');
    note('call', 'read_file path=main.py');
    note('result', 'def old_name():');
    note('call', 'edit_file path=main.py');
    note('summary', 'Renamed old_name to new_name.');
    return result;
  });
}

test('Agent task: the transcript channel, a progress notification with Cancel, the summary with its buttons', async () => {
  server.capabilities = AGENT_COMMANDS;
  agentServer();
  fake.answerInputBox = 'rename old_name';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.deepEqual(fake.channelsShown, [{ name: 'codenook agent', preserveFocus: true }]);
  assert.equal(
    fake.channels.get('codenook agent'),
    '■ task: rename old_name\nReading the file.\n▶ read_file path=main.py\n◀ def old_name():\n▶ edit_file path=main.py\n✔ Renamed old_name to new_name.\n',
  );
  assert.equal(fake.progress.length, 1);
  assert.equal(fake.progress[0].options.cancellable, true);
  assert.equal(fake.progress[0].options.location, 15 /* Notification */);
  assert.deepEqual(fake.progress[0].messages, ['the model is writing…', '▶ read_file path=main.py', '▶ edit_file path=main.py']);
  assert.ok(fake.progress[0].done);
  assert.deepEqual(fake.messages.at(-1), {
    level: 'info',
    message: 'codenook: Renamed old_name to new_name. (2 files changed, unsaved)',
    buttons: ['Show changes', 'Undo task'],
  });
});

test('Agent task: "Show changes" opens a diff against the text before the task, or a created file', async () => {
  server.capabilities = AGENT_COMMANDS;
  agentServer();
  fake.answerInputBox = 'rename old_name';
  fake.answerMessage = 'Show changes';
  fake.answerQuickPick = (items) => items[0];
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  const pick = fake.quickPicks.at(-1)!;
  assert.deepEqual(
    (pick.items as { label: string; description: string }[]).map((i) => [i.label, i.description]),
    [
      ['main.py', 'changed'],
      ['new.py', 'created'],
    ],
  );
  const diff = fake.executed.find((e) => e.command === 'vscode.diff');
  assert.ok(diff, 'vscode.diff ran');
  const [left, right, title] = diff.args as [{ scheme: string; path: string }, { toString(): string }, string];
  assert.equal(left.scheme, 'codenook-original');
  assert.equal(left.path, '/main.py');
  assert.equal(right.toString(), 'file:///w/main.py');
  assert.match(title, /main\.py/);
  const provider = fake.contentProviders.get('codenook-original')!;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  assert.equal(provider.provideTextDocumentContent(left as any), 'def old_name():\n    pass\n');
  // The created file just opens.
  fake.answerQuickPick = (items) => items[1];
  await fake.commands.get('codenook.runAgentTask')!();
  assert.equal(fake.shownDocuments.at(-1)?.uri.toString(), 'file:///w/new.py');
  assert.equal(fake.executed.filter((e) => e.command === 'vscode.diff').length, 1);
});

test('Agent task: "Undo task" sends codenook.agentUndo with the task and says what was restored', async () => {
  server.capabilities = AGENT_COMMANDS;
  agentServer();
  fake.answerInputBox = 'rename old_name';
  fake.answerMessage = 'Undo task';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  const undo = server.last.requests.filter((r) => r.method === 'workspace/executeCommand').at(-1);
  assert.deepEqual(undo?.params, { command: 'codenook.agentUndo', arguments: [{ taskId: 'task-1' }] });
  assert.deepEqual(fake.messages.at(-1), { level: 'info', message: 'codenook: undo: restored 1 file.', buttons: [] });
});

test('Undo Last Agent Task: the last task of this window, refusals as a warning', async () => {
  server.capabilities = AGENT_COMMANDS;
  agentServer(AGENT_RESULT, {
    restored: [],
    refused: [{ uri: 'file:///w/main.py', path: 'main.py', reason: 'changed since the task' }],
    message: 'main.py was changed since the task: not restored.',
  });
  await start();
  // No task yet: the server's last one.
  await fake.commands.get('codenook.undoLastAgentTask')!();
  const requests = () => server.last.requests.filter((r) => r.method === 'workspace/executeCommand');
  assert.deepEqual(requests().at(-1)?.params, { command: 'codenook.agentUndo', arguments: [{}] });
  assert.deepEqual(fake.messages.at(-1), {
    level: 'warning',
    message: 'codenook: main.py was changed since the task: not restored.',
    buttons: [],
  });
  fake.answerInputBox = 'rename old_name';
  await fake.commands.get('codenook.runAgentTask')!();
  await fake.commands.get('codenook.undoLastAgentTask')!();
  assert.deepEqual(requests().at(-1)?.params, { command: 'codenook.agentUndo', arguments: [{ taskId: 'task-1' }] });
});

test('Undo Last Agent Task: a clear message when the server does not offer codenook.agentUndo', async () => {
  server.capabilities = { executeCommandProvider: { commands: ['codenook.agentTask'] } };
  await start();
  await fake.commands.get('codenook.undoLastAgentTask')!();
  assert.match(fake.messages.at(-1)?.message ?? '', /not available in this server version.*codenook\.agentUndo/);
  assert.equal(server.last.requests.filter((r) => r.method === 'workspace/executeCommand').length, 0);
});

test('Agent task: Cancel cancels the request; the server\'s "cancelled" answer shows as a warning', async () => {
  server.capabilities = AGENT_COMMANDS;
  let tokenSeen: { isCancellationRequested: boolean } | undefined;
  server.handlers.set('workspace/executeCommand', async (_params, token) => {
    tokenSeen = token as { isCancellationRequested: boolean };
    fake.progress.at(-1)!.cancel(); // the user presses Cancel while the task runs
    return { ...AGENT_RESULT, status: 'cancelled', message: 'cancelled at step 2', changes: [] };
  });
  fake.answerInputBox = 'rename old_name';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.equal(tokenSeen?.isCancellationRequested, true, 'the request got the progress\'s token');
  assert.deepEqual(fake.messages.at(-1), {
    level: 'warning',
    message: 'codenook: the agent task was cancelled: cancelled at step 2',
    buttons: [],
  });
  // A server that answers the cancellation with an error instead (before any transcript):
  // still a plain warning.
  server.handlers.set('workspace/executeCommand', async () => {
    fake.progress.at(-1)!.cancel();
    throw new ResponseError(-32800, 'Request cancelled');
  });
  await fake.commands.get('codenook.runAgentTask')!();
  assert.deepEqual(fake.messages.at(-1), { level: 'warning', message: 'codenook: the agent task was cancelled.', buttons: [] });
});

test('Agent task: cancelled with an error after it started, Undo Last Agent Task still takes it back', async () => {
  server.capabilities = AGENT_COMMANDS;
  server.handlers.set('workspace/executeCommand', async (params) => {
    const { command } = params as { command: string };
    if (command === 'codenook.agentUndo') {
      return { restored: ['file:///w/main.py'], refused: [], message: 'restored 1 file(s)' };
    }
    server.last.notify('codenook/agentTranscript', { taskId: 'task-9', kind: 'task', text: 'rename old_name' });
    fake.progress.at(-1)!.cancel();
    throw new ResponseError(-32800, 'Request cancelled');
  });
  fake.answerInputBox = 'rename old_name';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.equal(fake.messages.at(-1)?.level, 'warning');
  assert.match(fake.messages.at(-1)?.message ?? '', /cancelled; "codenook: Undo Last Agent Task" takes back/);
  await fake.commands.get('codenook.undoLastAgentTask')!();
  const undo = server.last.requests.filter((r) => r.method === 'workspace/executeCommand').at(-1);
  assert.deepEqual(undo?.params, { command: 'codenook.agentUndo', arguments: [{ taskId: 'task-9' }] });
  assert.deepEqual(fake.messages.at(-1), { level: 'info', message: 'codenook: restored 1 file(s)', buttons: [] });
});

test('Undo Last Agent Task: the server\'s refusal (nothing to undo) shows as a warning in its words', async () => {
  server.capabilities = AGENT_COMMANDS;
  server.handlers.set('workspace/executeCommand', async () => {
    throw new ResponseError(-32603, 'codenook: no agent task to undo (this session knows none)');
  });
  await start();
  await fake.commands.get('codenook.undoLastAgentTask')!();
  assert.deepEqual(fake.messages.at(-1), {
    level: 'warning',
    message: 'codenook: no agent task to undo (this session knows none)',
    buttons: [],
  });
});

test('Agent task: a failure answer is a warning with the server\'s message; an error answer an error', async () => {
  server.capabilities = AGENT_COMMANDS;
  agentServer({ ...AGENT_RESULT, status: 'budget', message: 'the step budget (30) ran out', changes: [] });
  fake.answerInputBox = 'rename old_name';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.deepEqual(fake.messages.at(-1), {
    level: 'warning',
    message: 'codenook: the agent task ran out of budget: the step budget (30) ran out',
    buttons: [],
  });
  server.handlers.set('workspace/executeCommand', async () => {
    throw new ResponseError(-32603, 'boom');
  });
  await fake.commands.get('codenook.runAgentTask')!();
  assert.deepEqual(fake.messages.at(-1), { level: 'error', message: 'codenook: the agent task failed: boom', buttons: [] });
});

test('Agent task: transcript notifications with unexpected params are logged, not shown', async () => {
  await start();
  server.last.notify('codenook/agentTranscript', { kind: 'call' });
  assert.equal(fake.channels.get('codenook agent'), undefined);
  assert.ok(fake.log.some((l) => /agentTranscript with unexpected params/.test(l)));
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

// -- the lazy start: `codenook languages --json` first, the server only for its documents ---------

test('activation starts nothing for a README or a commit message; the first Java file starts the server', async () => {
  fake.documents = [doc('markdown', '/w/README.md'), doc('git-commit', '/w/.git/COMMIT_EDITMSG')];
  await start();
  assert.equal(server.clients.length, 0, 'no language client, so no server and no model');
  assert.deepEqual(codenook.calls(), ['languages --json'], 'only the languages were asked');
  assert.equal(controller.phase, 'waiting');
  assert.equal(statusItem().text, '$(circle-outline) codenook');
  assert.match(String(statusItem().tooltip), /starts when a file of its languages \(python, java\) opens/);
  assert.ok(fake.log.some((l) => /languages --json: python, java$/.test(l)), fake.log.join('\n'));

  fake.openDocument(doc('markdown', '/w/CHANGES.md'));
  fake.openDocument(doc('python', '/w/a.py', 'git')); // a diff view's old side
  fake.openDocument(doc('python', 'codenook', 'output'));
  await controller.settled();
  assert.equal(server.clients.length, 0, 'other languages and other schemes start nothing');

  fake.openDocument(doc('java', '/w/Main.java'));
  await controller.settled();
  assert.equal(server.clients.length, 1);
  const client = server.last;
  assert.ok(client.started);
  const selector = client.clientOptions.documentSelector;
  assert.ok(selects(selector, { scheme: 'file', languageId: 'java', path: '/w/Main.java' }));
  assert.ok(!selects(selector, { scheme: 'file', languageId: 'markdown', path: '/w/README.md' }));
  fake.openDocument(doc('python', '/w/b.py'));
  await controller.settled();
  assert.equal(server.clients.length, 1, 'one server');
  assert.deepEqual(codenook.calls(), ['languages --json']);
});

test('the real `codenook languages --json`: a markdown document does not start the client; a java document does', async (t) => {
  const languages = serverLanguages();
  if (languages === undefined) {
    t.skip('no .venv/bin/codenook (run make install)');
    return;
  }
  fake.documents = [doc('markdown', '/w/README.md')];
  await start({ serverCommand: [codenookBin, 'serve'] });
  assert.equal(server.clients.length, 0, fake.log.join('\n'));
  assert.equal(controller.languages?.length, languages.length);
  fake.openDocument(doc('java', '/w/Main.java'));
  await controller.settled();
  assert.equal(server.clients.length, 1);
  assert.deepEqual(server.last.clientOptions.documentSelector, selectorFor(languages), 'the server\'s languages from the start');
  assert.deepEqual(server.last.serverOptions.args, ['serve']);
});

test('a document starts the server by language id, by extension, or untitled', async () => {
  fake.documents = [];
  await start();
  fake.openDocument(doc('markdown', 'Untitled-1', 'untitled'));
  await controller.settled();
  assert.equal(server.clients.length, 0);
  fake.openDocument(doc('plaintext', '/w/stubs.pyi'));
  await controller.settled();
  assert.equal(server.clients.length, 1, 'a .pyi file VS Code does not know the language of');

  await controller.stop();
  fake.documents = [];
  await controller.restart();
  assert.equal(server.clients.length, 1);
  fake.openDocument(doc('python', 'Untitled-2', 'untitled'));
  await controller.settled();
  assert.equal(server.clients.length, 2, 'an untitled Python document');
});

test('when the languages cannot be asked (an older codenook): one warning, the first file starts it, the initialize result narrows it', async () => {
  process.env.CODENOOK_FAKE_LANGUAGES = 'fail';
  fake.documents = [];
  await start();
  assert.equal(server.clients.length, 0);
  const warnings = () => fake.log.filter((l) => l.startsWith('warn: cannot ask the server for its languages'));
  assert.equal(warnings().length, 1, fake.log.join('\n'));
  assert.match(warnings()[0], /languages --json: .*invalid choice/);
  assert.match(warnings()[0], /starts on the first file that opens/);
  assert.equal(statusItem().text, '$(circle-outline) codenook');

  server.capabilities = { experimental: { codenook: { languages: FAKE_LANGUAGES } } };
  const original = LanguageClient.prototype.start;
  let selectorAtStart: unknown;
  LanguageClient.prototype.start = async function (this: InstanceType<typeof LanguageClient>) {
    selectorAtStart = structuredClone(this.clientOptions.documentSelector);
    await original.call(this);
  };
  try {
    fake.openDocument(doc('markdown', '/w/README.md'));
    await controller.settled();
  } finally {
    LanguageClient.prototype.start = original;
  }
  assert.equal(server.clients.length, 1, 'the previous behaviour: any first file starts it');
  assert.deepEqual(selectorAtStart, [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.deepEqual(server.last.clientOptions.documentSelector, selectorFor(FAKE_LANGUAGES), 'narrowed before any document is sent');
  fake.openDocument(doc('markdown', '/w/OTHER.md'));
  await controller.settled();
  assert.equal(warnings().length, 1, 'warned once');
});

test('a wrapper command without a "serve" word: not run for the languages, a warning, the first file starts it', async () => {
  await start({ serverCommand: [codenook.program, 'wrapped-serve'] });
  assert.deepEqual(codenook.calls(), [], 'nothing to ask with');
  assert.ok(fake.log.some((l) => /warn: cannot ask .* has no "serve" word/.test(l)), fake.log.join('\n'));
  assert.equal(server.clients.length, 1, 'a Python file is open');
  assert.deepEqual(server.last.serverOptions.args, ['wrapped-serve']);
});

test('the languages are asked without serve\'s flags; the server gets them', async () => {
  await start({ serverCommand: [codenook.program, 'serve', '--set', 'completion.maxLines=2'] });
  assert.deepEqual(codenook.calls(), ['languages --json']);
  assert.deepEqual(server.last.serverOptions.args, ['serve', '--set', 'completion.maxLines=2']);
});

test('Restart Server asks the languages again; Show Status → Start Now starts a waiting server', async () => {
  fake.documents = [doc('markdown', '/w/README.md')];
  await start();
  await fake.commands.get('codenook.restartServer')!();
  assert.deepEqual(codenook.calls(), ['languages --json', 'languages --json']);
  assert.equal(server.clients.length, 0);
  fake.answerMessage = 'Start Now';
  await fake.commands.get('codenook.showStatus')!();
  await controller.settled();
  assert.match(fake.messages.at(-1)?.message ?? '', /not started yet.*python, java/);
  assert.equal(server.clients.length, 1);
});

test('stopped while waiting: a document opened afterwards starts nothing', async () => {
  fake.documents = [];
  await start();
  await deactivate();
  fake.openDocument(doc('python', '/w/a.py'));
  await tick();
  assert.equal(server.clients.length, 0);
});

// -- Restricted Mode (an untrusted workspace) ----------------------------------------------------

test('package.json declares limited support for untrusted workspaces and restricts the settings that name programs or files', () => {
  const untrusted = packageJson.capabilities.untrustedWorkspaces;
  assert.equal(untrusted.supported, 'limited');
  assert.match(untrusted.description ?? '', /index/);
  const restricted = untrusted.restrictedConfigurations ?? [];
  for (const key of ['codenook.serverCommand', 'codenook.model.path', 'codenook.agent.allowCommands', 'codenook.agent.readSecrets']) {
    assert.ok(restricted.includes(key), key);
  }
  const contributed = packageJson.contributes.configuration.properties;
  for (const key of restricted) {
    assert.ok(key in contributed, `${key} is a contributed setting`);
  }
});

test('Restricted Mode: the server never gets workspace indexing, whatever the settings say', async () => {
  fake.trusted = false;
  fake.workspaceFolders = [{ uri: { scheme: 'file', fsPath: join(codenook.dir, 'ws') } }];
  mkdirSync(join(codenook.dir, 'ws'));
  await start({ 'index.enabled': true });
  const client = server.last;
  assert.deepEqual(client.serverOptions.options, { cwd: homedir() }, 'not the workspace: `python -m` would import from there');
  const init = client.initializationOptionsSent as Record<string, Record<string, unknown>>;
  assert.equal(init.index.enabled, false);
  assert.equal(init.index.maxFileBytes, 1048576, 'the other index settings as they are');
  const middleware = client.clientOptions.middleware.workspace.configuration;
  const answers = await middleware({ items: [{ section: 'codenook' }, { section: 'codenook.index' }] }, undefined, async () => [{}, {}]);
  assert.equal(answers[0].index.enabled, false);
  assert.equal(answers[1].enabled, false);
  fake.changeSettings({ 'index.enabled': true });
  assert.equal(client.sent.length, 0, 'nothing to send: indexing stays off');
  fake.changeSettings({ 'completion.maxLines': 3 });
  assert.deepEqual(client.sent.at(-1)?.params, { settings: { codenook: { completion: { maxLines: 3 } } } });
  assert.match(String(statusItem().tooltip), /Restricted Mode/);

  // The user trusts the workspace: indexing on, the same server.
  fake.grantTrust();
  await tick();
  await controller.settled();
  assert.equal(server.clients.length, 1, 'no restart');
  assert.deepEqual(client.sent.at(-1), {
    method: 'workspace/didChangeConfiguration',
    params: { settings: { codenook: { index: { enabled: true } } } },
  });
  const after = await middleware({ items: [{ section: 'codenook' }] }, undefined, async () => [{}]);
  assert.equal(after[0].index.enabled, true);
  assert.doesNotMatch(String(statusItem().tooltip), /Restricted Mode/);
});

test('Restricted Mode: trust granted while waiting for a document: the server starts with indexing', async () => {
  fake.trusted = false;
  fake.documents = [];
  await start();
  fake.grantTrust();
  await tick();
  await controller.settled();
  assert.equal(server.clients.length, 0);
  fake.openDocument(doc('python', '/w/a.py'));
  await controller.settled();
  const init = server.last.initializationOptionsSent as Record<string, Record<string, unknown>>;
  assert.equal(init.index.enabled, true);
});

test('Restricted Mode: no agent task, even when the server offers one', async () => {
  server.capabilities = { executeCommandProvider: { commands: ['codenook.agentTask'] } };
  server.handlers.set('workspace/executeCommand', () => ({ message: 'done' }));
  fake.trusted = false;
  fake.answerInputBox = 'delete everything';
  fake.answerMessage = 'Manage Workspace Trust';
  await start();
  await fake.commands.get('codenook.runAgentTask')!();
  assert.equal(fake.inputBoxes.length, 0);
  assert.match(fake.messages.at(-1)?.message ?? '', /not available in Restricted Mode/);
  assert.deepEqual(fake.messages.at(-1)?.buttons, ['Manage Workspace Trust']);
  assert.ok(fake.executed.some((e) => e.command === 'workbench.trust.manage'));
  // Nor through workspace/executeCommand (a code action that would run it).
  const executeCommand = server.last.clientOptions.middleware.executeCommand;
  let ran = false;
  await executeCommand('codenook.agentTask', [{ task: 'x' }], async () => {
    ran = true;
  });
  assert.equal(ran, false);
  assert.equal(server.last.requests.filter((r) => r.method === 'workspace/executeCommand').length, 0);
});

test('Restricted Mode: a server program inside the workspace is not run, not even for its languages', async () => {
  fake.trusted = false;
  fake.workspaceFolders = [{ uri: { scheme: 'file', fsPath: codenook.dir } }];
  mkdirSync(join(codenook.dir, 'sub'));
  for (const serverCommand of [[codenook.program, 'serve'], './codenook serve', '${workspaceFolder}/sub/../codenook serve']) {
    fake.messages = [];
    fake.statusItems = [];
    await start({ serverCommand });
    assert.equal(server.clients.length, 0, String(serverCommand));
    assert.deepEqual(codenook.calls(), [], 'not run');
    assert.match(fake.messages.at(-1)?.message ?? '', /inside the workspace folder .* not trusted \(Restricted Mode\)/);
    assert.equal(statusItem().text, '$(error) codenook: not running');
    await deactivate();
    for (const s of subscriptions) {
      s.dispose();
    }
  }
  // Trusted, the same command runs.
  fake.statusItems = [];
  await start({ serverCommand: './codenook serve' });
  assert.equal(server.clients.length, 0);
  fake.grantTrust();
  await tick();
  await controller.settled();
  assert.deepEqual(codenook.calls(), ['languages --json']);
  assert.equal(server.clients.length, 1);
});
