// The VS Code side: ask `codenook languages --json` which languages the server serves, start
// `codenook serve` through vscode-languageclient once a document of one of them is open, keep
// its settings in sync (Restricted Mode included), show its status, offer the commands.
// Everything that can be decided without VS Code lives in config.ts, commandLine.ts,
// protocol.ts, status.ts, commands.ts and agent.ts, which the unit tests load directly; this
// file only wires them to the editor.

import { execFile } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  type ClientCapabilities,
  CloseAction,
  type CloseHandlerResult,
  DidChangeConfigurationNotification,
  type DocumentSelector,
  ErrorAction,
  ExecuteCommandRequest,
  type FeatureState,
  LanguageClient,
  type LanguageClientOptions,
  ResponseError,
  RevealOutputChannelOn,
  type ServerCapabilities,
  type ServerOptions,
  type StaticFeature,
} from 'vscode-languageclient/node';
import {
  AGENT_UNDO_COMMAND,
  type AgentResult,
  agentUndoArguments,
  changeItems,
  diffTitle,
  ORIGINAL_SCHEME,
  originalKey,
  Originals,
  parseAgentResult,
  parseTranscriptEntry,
  parseUndoResult,
  progressMessage,
  resultMessage,
  SHOW_CHANGES,
  TRANSCRIPT_NOTIFICATION,
  TranscriptWriter,
  UNDO_TASK,
  undoMessage,
} from './agent';
import {
  checkoutFallback,
  CommandLineError,
  findExecutable,
  folderHolding,
  formatCommand,
  languagesCommand,
  parseServerCommand,
  type ServerCommand,
} from './commandLine';
import {
  AGENT_TASK_COMMAND,
  AGENT_TASK_RESTRICTED_MESSAGE,
  agentTaskArguments,
  agentTaskUnavailableMessage,
  needsInstruction,
  serverHasCommand,
  withInstruction,
} from './commands';
import {
  configurationAnswer,
  didChangeConfigurationParams,
  type FlatSettings,
  isLanguageEnabled,
  nest,
  readServerSettings,
  withTrust,
} from './config';
import {
  advertisedLanguages,
  broadSelector,
  CLIENT_EXPERIMENTAL,
  documentWanted,
  languageNames,
  parseLanguagesOutput,
  parseProblem,
  PROBLEM_NOTIFICATION,
  problemLevel,
  problemSettingId,
  selectorFor,
  type ServerLanguage,
  type ServerProblem,
} from './protocol';
import { StderrTail, startFailureMessage } from './stderr';
import {
  type ClientState,
  keepPolling,
  type ServerStatus,
  statsSummary,
  statusBarView,
  statusFromPoll,
} from './status';

export const STATUS_NOTIFICATION = 'codenook/status';
/** Sent with `{}`: pygls 2 never answers a request whose `params` member is missing. */
export const STATS_REQUEST = 'codenook/stats';
const OPEN_SETTING = 'Open Setting';
const SHOW_OUTPUT = 'Show Output';
const POLL_MS = 1000;
/** Crashes of a running server within this window before it is no longer restarted. */
const CRASH_WINDOW_MS = 3 * 60 * 1000;
const MAX_CRASHES = 3;
/** `codenook languages --json` takes about 0.1 s; a cold Python on a slow disk, a few seconds. */
const LANGUAGES_TIMEOUT_MS = 20000;
const MANAGE_TRUST = 'Manage Workspace Trust';
const START_NOW = 'Start Now';
const RESTRICTED_LINE = 'Restricted Mode (untrusted workspace): no workspace indexing, no agent tasks.';

/**
 * The language client shows its own "couldn't create connection to server" notification when
 * the server exits during start-up, on top of ours (which names the command and has buttons).
 * That one message goes to the output channel only; every other error is left as it is.
 */
class CodenookLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    const ours = /couldn't create connection to server|Server initialization failed/.test(message);
    super.error(message, data, ours ? false : showNotification);
  }
}

/**
 * codenook's part of the handshake. It announces `experimental.codenook.problems`, so the
 * server sends `codenook/problem` (with a code and the setting to open) instead of
 * window/showMessage. And it follows the languages the server advertises in its initialize
 * result: the client is built with the selector of the languages `codenook languages --json`
 * listed (or, when that could not be asked, with every file), and preInitialize, which runs
 * after the initialize result has come and before any feature registers or any document is
 * opened, replaces it with the advertised list should that differ (the server was updated in
 * between) or narrows the every-file selector. The selector array is the one the client was
 * built with, replaced in place; a server that advertises nothing leaves it as it is.
 */
class CodenookFeature implements StaticFeature {
  constructor(private readonly advertised: (languages: ServerLanguage[] | undefined) => void) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    const experimental = (capabilities.experimental ?? {}) as Record<string, unknown>;
    capabilities.experimental = { ...experimental, codenook: { ...CLIENT_EXPERIMENTAL } };
  }

  preInitialize(capabilities: ServerCapabilities, documentSelector: DocumentSelector | undefined): void {
    const languages = advertisedLanguages(capabilities);
    if (languages !== undefined && Array.isArray(documentSelector)) {
      (documentSelector as unknown[]).splice(0, documentSelector.length, ...selectorFor(languages));
    }
    this.advertised(languages);
  }

  initialize(): void {}

  getState(): FeatureState {
    return { kind: 'static' };
  }

  clear(): void {}
}

/** The codenook checkout this bundle was built in (scripts/build.mjs), for checkoutFallback. */
declare const CODENOOK_CHECKOUT: string | undefined;
const BUILD_CHECKOUT = typeof CODENOOK_CHECKOUT === 'string' ? CODENOOK_CHECKOUT : undefined;

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('codenook');
}

function rawGetter(key: string): unknown {
  return config().get(key);
}

/** Whether the workspace is trusted (not Restricted Mode). */
function trusted(): boolean {
  return vscode.workspace.isTrusted !== false;
}

/** The settings as the server may see them: in Restricted Mode without workspace indexing. */
function getter(key: string): unknown {
  return withTrust(rawGetter, trusted())(key);
}

/** An error's message without a leading "codenook: " (the messages shown add their own). */
function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/^codenook:\s*/, '');
}

function openSetting(key: string): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openSettings', key);
}

function workspaceFolderPath(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file');
  return folder?.uri.fsPath;
}

/**
 * The working directory of the server and of `codenook languages`: the workspace folder, but in
 * Restricted Mode the home folder, because an interpreter may take modules from its working
 * directory (`python -m codenook serve` puts it first on sys.path).
 */
function serverCwd(): string | undefined {
  return trusted() ? workspaceFolderPath() : os.homedir();
}

function workspaceFolderPaths(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

/** Where the server is in its life: see begin() and documentOpened(). */
type Phase = 'idle' | 'asking' | 'waiting' | 'started';

/** An agent task this window started and whose answer has not come yet. */
interface RunningTask {
  /** The task's text, as sent. */
  task: string;
  /** From the task's first transcript entry (kind "task"). */
  taskId?: string;
  /** Sets the message of the task's progress notification. */
  report?: (message: string) => void;
  lastMessage?: string;
}

export class Controller implements vscode.Disposable {
  readonly output: vscode.LogOutputChannel;
  readonly statusItem: vscode.StatusBarItem;
  client: LanguageClient | undefined;
  private state: ClientState = { kind: 'starting' };
  private model: string | null | undefined;
  private sentSettings: FlatSettings = {};
  /**
   * The server's languages: from `codenook languages --json` before it starts, then from its
   * initialize result. Undefined: not known (the question failed, the server advertises none).
   */
  languages: ServerLanguage[] | undefined;
  phase: Phase = 'idle';
  /** The command of the current begin(), resolved; what doStart runs. */
  private command: ServerCommand | undefined;
  /** JSON of the codenook.serverCommand setting the current begin() read. */
  private commandSetting: string | undefined;
  /** Bumped by every begin() and stop(): a queued start of an older one does nothing. */
  private generation = 0;
  private gotNotification = false;
  private crashes: number[] = [];
  private running = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly disposables: vscode.Disposable[] = [];
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly stderr = new StderrTail();
  /** "codenook agent": the transcripts of agent tasks. */
  private transcriptChannel: vscode.OutputChannel | undefined;
  private readonly transcriptWriter = new TranscriptWriter();
  private runningTasks: RunningTask[] = [];
  /** The texts before the recent tasks, shown by the `codenook-original` documents. */
  private readonly originals = new Originals();
  /** The last agent task this window ran (for Undo Last Agent Task). */
  private lastTaskId: string | undefined;

  constructor() {
    this.output = vscode.window.createOutputChannel('codenook', { log: true });
    this.statusItem = vscode.window.createStatusBarItem(
      'codenook.status',
      vscode.StatusBarAlignment.Right,
      100,
    );
    this.statusItem.name = 'codenook';
    this.statusItem.command = 'codenook.showStatus';
    this.render();
    this.statusItem.show();
    const register = (id: string, fn: (...args: unknown[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, fn));
    register('codenook.acceptNextWord', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord'),
    );
    register('codenook.acceptNextLine', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextLine'),
    );
    register('codenook.triggerSuggestion', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'),
    );
    register('codenook.runAgentTask', () => this.runAgentTask());
    register('codenook.undoLastAgentTask', () => this.undoLastAgentTask());
    register('codenook.showStatus', () => this.showStatus());
    register('codenook.restartServer', () => this.restart());
    register('codenook.showOutput', () => this.output.show(true));
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
      vscode.workspace.onDidOpenTextDocument((doc) => this.documentOpened(doc)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.trustGranted()),
      vscode.workspace.registerTextDocumentContentProvider(ORIGINAL_SCHEME, {
        provideTextDocumentContent: (uri) =>
          this.originals.get(uri.query) ?? '(codenook no longer holds the text from before this task)',
      }),
    );
  }

  // -- lifecycle ----------------------------------------------------------------------------

  /** Start, stop and restart run one at a time, in the order they were asked for. */
  private serialize(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn, fn);
    return this.queue;
  }

  /**
   * Ask the server's languages (`codenook languages --json`, no model), then start the server
   * as soon as a document of one of them is open; until then nothing runs. This is what
   * activation does: opening a README or a commit message must not load a 48 GB model.
   */
  begin(): Promise<void> {
    return this.serialize(() => this.doBegin());
  }

  stop(): Promise<void> {
    return this.serialize(() => this.doStop());
  }

  /** Resolves when the begin, start, stop or restart asked for so far has finished. */
  settled(): Promise<void> {
    return this.queue;
  }

  restart(): Promise<void> {
    return this.serialize(async () => {
      await this.doStop();
      this.crashes = [];
      await this.doBegin();
    });
  }

  private async doBegin(): Promise<void> {
    const generation = ++this.generation;
    this.model = undefined;
    this.languages = undefined;
    this.command = undefined;
    this.commandSetting = JSON.stringify(config().get('serverCommand') ?? null);
    const command = this.resolveCommand();
    if (command === undefined) {
      this.phase = 'idle';
      return;
    }
    this.command = command;
    this.phase = 'asking';
    this.setState({ kind: 'waiting' });
    const languages = await this.askLanguages(command);
    if (generation !== this.generation) {
      return;
    }
    this.languages = languages;
    this.phase = 'waiting';
    if (vscode.workspace.textDocuments.some((doc) => this.wants(doc))) {
      await this.doStart(command);
      return;
    }
    this.setState({ kind: 'waiting', languages: languages && languageNames(languages) });
    this.output.info(
      languages === undefined
        ? 'the server starts when a file opens'
        : `the server starts when a file of its languages opens: ${languageNames(languages)}`,
    );
  }

  private wants(doc: vscode.TextDocument): boolean {
    return documentWanted(this.languages, doc);
  }

  /** A document opened: the first one the server serves starts it. */
  private documentOpened(doc: vscode.TextDocument): void {
    if (this.phase === 'waiting' && this.wants(doc)) {
      void this.startNow();
    }
  }

  /** Start a server that waits for a document (a document opened, or Show Status → Start Now). */
  private startNow(): Promise<void> {
    if (this.phase !== 'waiting') {
      return this.settled();
    }
    this.phase = 'started';
    const generation = this.generation;
    return this.serialize(async () => {
      if (generation === this.generation && this.command !== undefined) {
        await this.doStart(this.command);
      }
    });
  }

  /**
   * codenook.serverCommand as a program that exists, or undefined after saying what is wrong
   * (the server is then "not running" until the setting changes or Restart Server).
   */
  private resolveCommand(): ServerCommand | undefined {
    let command: ServerCommand;
    const raw = config().get('serverCommand');
    try {
      command = parseServerCommand(raw, { workspaceFolder: workspaceFolderPath(), home: os.homedir() });
    } catch (error) {
      const why = error instanceof CommandLineError ? error.message : String(error);
      this.notRunning(`codenook.serverCommand is not usable: ${why}`, 'codenook.serverCommand');
      return undefined;
    }
    if (process.platform === 'win32') {
      return trusted() || folderHolding(command.command, workspaceFolderPaths()) === undefined
        ? command
        : this.refuseWorkspaceProgram(command.command);
    }
    let found = findExecutable(command.command, process.env.PATH);
    if (found === undefined) {
      const fallback = checkoutFallback(raw, BUILD_CHECKOUT);
      if (fallback !== undefined) {
        this.output.info(`'${command.command}' is not on PATH; using the checkout this extension was built in`);
        command = fallback;
        found = findExecutable(command.command, process.env.PATH);
      }
    }
    if (found === undefined) {
      const where = command.command.includes('/') ? 'does not exist or is not executable' : 'was not found on PATH';
      this.notRunning(
        `the server command '${command.command}' ${where} (codenook.serverCommand is ` +
          `'${formatCommand(command)}'). Point codenook.serverCommand at the codenook of your ` +
          `install, e.g. /path/to/codenook/.venv/bin/codenook serve.`,
        'codenook.serverCommand',
      );
      return undefined;
    }
    // The program as found (an absolute path for a bare name): the child's cwd is the workspace
    // folder, where a relative PATH entry would find something else.
    command = { command: path.resolve(found), args: command.args };
    if (!trusted() && folderHolding(command.command, workspaceFolderPaths()) !== undefined) {
      return this.refuseWorkspaceProgram(command.command);
    }
    return command;
  }

  /** Restricted Mode: a program inside the workspace is the workspace's to choose, not run. */
  private refuseWorkspaceProgram(program: string): undefined {
    const folder = folderHolding(program, workspaceFolderPaths());
    this.notRunning(
      `the server command '${program}' is inside the workspace folder ${folder}, and this ` +
        'workspace is not trusted (Restricted Mode): codenook runs no program from it. ' +
        'Trust the workspace, or point codenook.serverCommand at a codenook outside it.',
      'codenook.serverCommand',
    );
    return undefined;
  }

  /**
   * `codenook languages --json` with the server's own command: the languages, or undefined
   * after a warning when they cannot be asked (an older server without the subcommand, a
   * wrapper command without a `serve` word): the server then starts on the first file and
   * serves the languages its initialize result advertises.
   */
  private async askLanguages(command: ServerCommand): Promise<ServerLanguage[] | undefined> {
    const query = languagesCommand(command);
    const fallback =
      'the server starts on the first file that opens, of any language, and then serves the ' +
      'languages its initialize result advertises';
    if (query === undefined) {
      this.output.warn(
        `cannot ask the server for its languages: codenook.serverCommand '${formatCommand(command)}' has no ` +
          `"serve" word to replace with "languages --json"; ${fallback}`,
      );
      return undefined;
    }
    const result = await new Promise<ServerLanguage[] | Error>((resolve) => {
      execFile(
        query.command,
        query.args,
        { cwd: serverCwd(), timeout: LANGUAGES_TIMEOUT_MS, maxBuffer: 1 << 20, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error) {
            const last = String(stderr).trim().split('\n').pop() ?? '';
            const why = error.killed ? `no answer within ${LANGUAGES_TIMEOUT_MS / 1000} s` : error.message.split('\n')[0];
            resolve(new Error(last ? `${why}: ${last}` : why));
            return;
          }
          resolve(parseLanguagesOutput(String(stdout)));
        },
      );
    });
    if (result instanceof Error) {
      this.output.warn(`cannot ask the server for its languages (${formatCommand(query)}: ${result.message}); ${fallback}`);
      return undefined;
    }
    this.output.info(`${formatCommand(query)}: ${languageNames(result)}`);
    return result;
  }

  private async doStart(command: ServerCommand): Promise<void> {
    this.phase = 'started';
    this.setState({ kind: 'starting' });
    this.gotNotification = false;
    this.model = undefined;
    this.output.info(`starting: ${formatCommand(command)}`);
    this.stderr.clear();
    const serverOptions: ServerOptions = {
      command: command.command,
      args: command.args,
      options: { cwd: serverCwd() },
    };
    const client = new CodenookLanguageClient('codenook', 'codenook', serverOptions, this.clientOptions());
    client.registerFeature(new CodenookFeature((languages) => this.languagesAdvertised(languages)));
    client.onNotification(STATUS_NOTIFICATION, (status: ServerStatus) => this.statusNotified(status));
    client.onNotification(PROBLEM_NOTIFICATION, (params: unknown) => this.serverProblem(params));
    client.onNotification(TRANSCRIPT_NOTIFICATION, (params: unknown) => this.transcriptNotified(params));
    this.client = client;
    this.running = false;
    try {
      await client.start();
    } catch (error) {
      this.client = undefined;
      try {
        await client.dispose(2000);
      } catch {
        // already down
      }
      const why = error instanceof Error ? error.message : String(error);
      await new Promise((resolve) => setTimeout(resolve, 300)); // let its last stderr lines arrive
      this.notRunning(startFailureMessage(formatCommand(command), why, this.stderr.reason()), 'codenook.serverCommand');
      return;
    }
    this.running = true;
    if (!this.gotNotification) {
      // (A status notification may already have come while start() was finishing.)
      this.setState({ kind: 'running' });
      this.poll();
    }
  }

  private async doStop(): Promise<void> {
    this.generation += 1;
    this.phase = 'idle';
    this.stopPolling();
    const client = this.client;
    this.client = undefined;
    this.running = false;
    if (client !== undefined) {
      try {
        await client.dispose(5000);
      } catch (error) {
        this.output.warn(`stopping the server: ${String(error)}`);
      }
    }
  }

  private clientOptions(): LanguageClientOptions {
    return {
      // The languages `codenook languages --json` listed; every file when it could not be
      // asked, narrowed before any document is sent (see CodenookFeature).
      documentSelector: this.languages === undefined ? broadSelector() : selectorFor(this.languages),
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // The server's stderr is its log (not only errors); keep its tail for start-up failures.
      stdioOptions: {
        stdout: (input, channel) => {
          readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => channel.info(line));
        },
        stderr: (input, channel) => {
          readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => {
            this.stderr.push(line);
            channel.info(line);
          });
        },
      },
      initializationOptions: () => {
        const flat = readServerSettings(getter);
        this.sentSettings = flat;
        return nest(flat);
      },
      // Our own messages say what to fix; the client's generic ones would only repeat them.
      initializationFailedHandler: () => false,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => this.serverClosed(),
      },
      middleware: {
        provideInlineCompletionItems: (document, position, context, token, next) => {
          if (!isLanguageEnabled(config().get('enable'), document.languageId)) {
            return null;
          }
          return next(document, position, context, token);
        },
        executeCommand: async (command, args, next) => {
          if (command === AGENT_TASK_COMMAND && !trusted()) {
            void this.showRestricted(AGENT_TASK_RESTRICTED_MESSAGE);
            return undefined;
          }
          if (needsInstruction(command, args)) {
            const instruction = await vscode.window.showInputBox({
              title: 'codenook: Edit with instruction',
              prompt: 'What should codenook do with the selected code?',
              placeHolder: 'e.g. use a dict comprehension',
              ignoreFocusOut: true,
            });
            if (!instruction?.trim()) {
              return undefined;
            }
            args = withInstruction(args, instruction);
          }
          return next(command, args);
        },
        workspace: {
          // VS Code would answer the `codenook` section with the client-only keys too
          // (serverCommand, enable), which the server reports as unknown settings.
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (answers instanceof ResponseError || !Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, i) =>
              item.section === 'codenook' || item.section?.startsWith('codenook.')
                ? configurationAnswer(item.section, getter)
                : answers[i],
            );
          },
        },
      },
    };
  }

  private serverClosed(): CloseHandlerResult {
    this.stopPolling();
    if (!this.running) {
      // Exited during start-up: doStart's catch says so, with the command and a button.
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    this.crashes.push(now);
    if (this.crashes.length > MAX_CRASHES) {
      this.running = false;
      this.notRunning(
        `the server stopped ${this.crashes.length} times in 3 minutes and will not be restarted. ` +
          'Run "codenook: Restart server" once the cause (see the output channel "codenook") is fixed.',
        'codenook.serverCommand',
      );
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    this.output.warn('the server stopped; restarting it');
    this.setState({ kind: 'starting' });
    this.gotNotification = false;
    // The client restarts the same process; poll again once it runs.
    setTimeout(() => this.poll(), POLL_MS);
    return { action: CloseAction.Restart, handled: true };
  }

  // -- status -------------------------------------------------------------------------------

  private setState(state: ClientState): void {
    this.state = state;
    this.render();
  }

  private render(): void {
    const view = statusBarView(this.state, this.model);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = trusted() ? view.tooltip : `${view.tooltip}\n${RESTRICTED_LINE}`;
    this.statusItem.backgroundColor =
      view.background === undefined
        ? undefined
        : new vscode.ThemeColor(
            view.background === 'error' ? 'statusBarItem.errorBackground' : 'statusBarItem.warningBackground',
          );
  }

  private statusNotified(status: ServerStatus): void {
    this.gotNotification = true;
    this.stopPolling();
    this.setState({ kind: 'running', status });
    if (this.model === undefined && (status.state === 'idle' || status.state === 'failed')) {
      void this.fetchModel();
    }
  }

  /**
   * The server notifies status changes, but (per docs/architecture.md) its first notification
   * may only come when the model has loaded; until a notification arrives, ask
   * `codenook/stats` every second so that "loading model" shows meanwhile.
   */
  private poll(): void {
    this.stopPolling();
    const client = this.client;
    if (client === undefined || this.gotNotification) {
      return;
    }
    client.sendRequest(STATS_REQUEST, {}).then(
      (stats) => {
        if (this.client !== client || this.gotNotification) {
          return;
        }
        const s = stats as Record<string, unknown>;
        const status = statusFromPoll(s as unknown as ServerStatus);
        if (status !== undefined) {
          if (typeof s.model === 'string') {
            this.model = s.model;
          }
          this.setState({ kind: 'running', status });
        }
        if (keepPolling(status)) {
          this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
        }
      },
      (error) => this.output.debug(`codenook/stats poll failed: ${String(error)}`),
    );
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) {
      clearTimeout(this.pollTimer);
      this.pollTimer = undefined;
    }
  }

  private async fetchModel(): Promise<void> {
    const client = this.client;
    if (client === undefined) {
      return;
    }
    try {
      const stats = (await client.sendRequest(STATS_REQUEST, {})) as Record<string, unknown>;
      if (this.client === client) {
        this.model = typeof stats.model === 'string' ? stats.model : null;
        this.render();
      }
    } catch {
      // not important: the tooltip just goes without the model's name
    }
  }

  // -- messages -----------------------------------------------------------------------------

  private notRunning(reason: string, setting: string): void {
    this.setState({ kind: 'notRunning', reason });
    this.output.error(reason);
    void vscode.window
      .showErrorMessage(`codenook: ${reason}`, OPEN_SETTING, SHOW_OUTPUT)
      .then((choice) => {
        if (choice === OPEN_SETTING) {
          void openSetting(setting);
        } else if (choice === SHOW_OUTPUT) {
          this.output.show(true);
        }
      });
  }

  private languagesAdvertised(languages: ServerLanguage[] | undefined): void {
    if (languages !== undefined) {
      this.languages = languages;
      this.output.info(`the server supports: ${languageNames(languages)}`);
    } else if (this.languages !== undefined) {
      this.output.info(`the server does not advertise its languages; it gets those of \`codenook languages\`: ${languageNames(this.languages)}`);
    } else {
      this.output.warn('the server does not advertise its languages (an older codenook?); it gets every file');
    }
  }

  /**
   * `codenook/problem`: shown by its type, with "Open Setting" when the server names the
   * setting that fixes it (from the data, never from the wording) and "Show Output".
   */
  private serverProblem(params: unknown): void {
    const problem = parseProblem(params);
    if (problem === undefined) {
      this.output.warn(`codenook/problem with unexpected params: ${JSON.stringify(params)}`);
      return;
    }
    const line = `${problem.message} [${problem.code || 'problem'}${problem.setting ? `, setting ${problem.setting}` : ''}]`;
    const level = problemLevel(problem);
    if (level === 'error') {
      this.output.error(line);
    } else if (level === 'warning') {
      this.output.warn(line);
    } else {
      this.output.info(line);
    }
    void this.showProblem(problem);
  }

  private async showProblem(problem: ServerProblem): Promise<void> {
    const setting = problemSettingId(problem);
    const buttons = setting === undefined ? [SHOW_OUTPUT] : [OPEN_SETTING, SHOW_OUTPUT];
    const level = problemLevel(problem);
    const show =
      level === 'error'
        ? vscode.window.showErrorMessage
        : level === 'warning'
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    const choice = await show(problem.message, ...buttons);
    if (choice === OPEN_SETTING && setting !== undefined) {
      await openSetting(setting);
    } else if (choice === SHOW_OUTPUT) {
      this.output.show(true);
    }
  }

  // -- settings -----------------------------------------------------------------------------

  private configurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration('codenook')) {
      return;
    }
    if (
      event.affectsConfiguration('codenook.serverCommand') &&
      JSON.stringify(config().get('serverCommand') ?? null) !== this.commandSetting
    ) {
      this.output.info('codenook.serverCommand changed: restarting the server');
      void this.restart();
      return;
    }
    this.pushSettings();
  }

  /** Send the server what changed since it last heard (didChangeConfiguration), if running. */
  private pushSettings(): void {
    const client = this.client;
    if (client === undefined || !this.running) {
      return;
    }
    const next = readServerSettings(getter);
    const params = didChangeConfigurationParams(this.sentSettings, next);
    if (params === undefined) {
      return;
    }
    if (Object.keys(params.settings.codenook).includes('model')) {
      this.model = undefined; // the server reloads the model; ask for its name again when ready
    }
    this.sentSettings = next;
    void client.sendNotification(DidChangeConfigurationNotification.type, params);
  }

  /**
   * The user trusted the workspace: the server gets the real settings (workspace indexing on,
   * the workspace's own model.path). A server command that now reads differently (the
   * workspace's codenook.serverCommand counts from now on), or one refused in Restricted Mode,
   * starts afresh.
   */
  private async trustGranted(): Promise<void> {
    this.output.info('the workspace is trusted now: workspace indexing on');
    if (JSON.stringify(config().get('serverCommand') ?? null) !== this.commandSetting) {
      await this.restart();
      return;
    }
    await this.settled();
    if (this.client !== undefined && this.running) {
      this.pushSettings();
    } else if (this.state.kind === 'notRunning') {
      await this.restart();
    }
    this.render();
  }

  private async showRestricted(message: string): Promise<void> {
    const choice = await vscode.window.showWarningMessage(message, MANAGE_TRUST);
    if (choice === MANAGE_TRUST) {
      await vscode.commands.executeCommand('workbench.trust.manage');
    }
  }

  // -- commands -----------------------------------------------------------------------------

  private async showStatus(): Promise<void> {
    const client = this.client;
    if (this.phase === 'waiting' && client === undefined) {
      const which = this.languages === undefined ? 'a file' : `a file of its languages (${languageNames(this.languages)})`;
      const choice = await vscode.window.showInformationMessage(
        `codenook: not started yet; the server, and its model, starts when ${which} opens.`,
        START_NOW,
      );
      if (choice === START_NOW) {
        await this.startNow();
      }
      return;
    }
    if (client === undefined || !this.running) {
      const reason = this.state.kind === 'notRunning' ? this.state.reason : 'the server is starting';
      const choice = await vscode.window.showWarningMessage(
        `codenook: ${reason}`,
        'Restart Server',
        OPEN_SETTING,
      );
      if (choice === 'Restart Server') {
        await this.restart();
      } else if (choice === OPEN_SETTING) {
        await openSetting('codenook.serverCommand');
      }
      return;
    }
    let stats: Record<string, unknown>;
    try {
      stats = (await client.sendRequest(STATS_REQUEST, {})) as Record<string, unknown>;
    } catch (error) {
      void vscode.window.showErrorMessage(`codenook: codenook/stats failed: ${String(error)}`);
      return;
    }
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const items: Item[] = statsSummary(stats).map((line) => ({ label: line.label, detail: line.detail }));
    items.push({ label: `Languages: ${languageNames(this.languages)}` });
    if (!trusted()) {
      items.push({ label: `$(shield) ${RESTRICTED_LINE}`, run: () => vscode.commands.executeCommand('workbench.trust.manage') });
    }
    items.push(
      { label: 'Actions', kind: vscode.QuickPickItemKind.Separator },
      { label: '$(debug-restart) Restart server', run: () => this.restart() },
      { label: '$(output) Show server log', run: () => this.output.show(true) },
      { label: '$(gear) Open codenook settings', run: () => openSetting('codenook') },
    );
    const picked = await vscode.window.showQuickPick(items, {
      title: `codenook ${client.initializeResult?.serverInfo?.version ?? ''}`.trim(),
      placeHolder: 'codenook status',
    });
    await picked?.run?.();
  }

  private async runAgentTask(): Promise<void> {
    if (!trusted()) {
      await this.showRestricted(AGENT_TASK_RESTRICTED_MESSAGE);
      return;
    }
    const client = this.client;
    const caps = client?.initializeResult?.capabilities;
    if (client === undefined || !this.running) {
      void vscode.window.showWarningMessage('codenook: the server is not running.');
      return;
    }
    if (!serverHasCommand(caps, AGENT_TASK_COMMAND)) {
      void vscode.window.showWarningMessage(agentTaskUnavailableMessage(caps));
      return;
    }
    const task = await vscode.window.showInputBox({
      title: 'codenook: Run agent task',
      prompt: 'Describe the task; the active file and selection go with it.',
      ignoreFocusOut: true,
    });
    if (!task?.trim()) {
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const c2p = client.code2ProtocolConverter;
    const args = agentTaskArguments(
      task,
      editor ? c2p.asUri(editor.document.uri) : undefined,
      editor?.document.version,
      editor && !editor.selection.isEmpty ? c2p.asRange(editor.selection) : undefined,
    );
    this.transcript().show(true);
    const running: RunningTask = { task: task.trim() };
    this.runningTasks.push(running);
    let raw: unknown;
    let cancelled = false;
    try {
      // The language client shows the server's work-done progress in the status bar only
      // (ProgressLocation.Window has no Cancel button), so the task also gets a notification
      // with Cancel, which cancels the request ($/cancelRequest): the server then answers
      // with status "cancelled".
      raw = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'codenook: agent task', cancellable: true },
        async (progress, token) => {
          running.report = (message) => progress.report({ message });
          token.onCancellationRequested(() => {
            cancelled = true;
          });
          return client.sendRequest(ExecuteCommandRequest.type, { command: AGENT_TASK_COMMAND, arguments: args }, token);
        },
      );
    } catch (error) {
      if (cancelled) {
        // The server answers a cancelled request with an error, not the task's answer, but it
        // keeps the task (and what it changed) for undo: Undo Last Agent Task takes it back.
        if (running.taskId !== undefined) {
          this.lastTaskId = running.taskId;
        }
        void vscode.window.showWarningMessage(
          running.taskId !== undefined
            ? 'codenook: the agent task was cancelled; "codenook: Undo Last Agent Task" takes back what it changed.'
            : 'codenook: the agent task was cancelled.',
        );
      } else {
        void vscode.window.showErrorMessage(`codenook: the agent task failed: ${errorText(error)}`);
      }
      return;
    } finally {
      this.runningTasks = this.runningTasks.filter((t) => t !== running);
    }
    const result = parseAgentResult(raw);
    if (result === undefined) {
      // Not the answer of the contract (an older server): show what it said, if anything.
      const message =
        typeof raw === 'string'
          ? raw
          : typeof raw === 'object' && raw !== null && typeof (raw as { message?: unknown }).message === 'string'
            ? (raw as { message: string }).message
            : undefined;
      if (message) {
        void vscode.window.showInformationMessage(`codenook: ${message}`);
      } else if (cancelled) {
        void vscode.window.showWarningMessage('codenook: the agent task was cancelled.');
      }
      return;
    }
    this.lastTaskId = result.taskId;
    this.originals.add(result);
    await this.showResult(result);
  }

  /** The end of a task: its summary (or why it stopped) with "Show changes" and "Undo task". */
  private async showResult(result: AgentResult): Promise<void> {
    const shown = resultMessage(result);
    const show = shown.level === 'info' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    const choice = await show(shown.text, ...shown.buttons);
    if (choice === SHOW_CHANGES) {
      await this.showChanges(result);
    } else if (choice === UNDO_TASK) {
      await this.undoAgentTask(result.taskId);
    }
  }

  /**
   * A quick pick of the changed files: a changed one opens in a diff between its text before
   * the task (a `codenook-original` document) and the document now; a created one just opens.
   */
  private async showChanges(result: AgentResult): Promise<void> {
    const items = changeItems(result.changes);
    const picked = await vscode.window.showQuickPick(items, {
      title: 'codenook: files the agent task changed',
      placeHolder: 'Pick a file to see its changes',
    });
    if (picked === undefined) {
      return;
    }
    const change = picked.change;
    const current = vscode.Uri.parse(change.uri);
    const index = result.changes.indexOf(change);
    if (change.created || change.original === null) {
      await vscode.window.showTextDocument(current, { preview: true });
      return;
    }
    const before = vscode.Uri.from({
      scheme: ORIGINAL_SCHEME,
      path: `/${change.path.replace(/^\/+/, '')}`,
      query: originalKey(result.taskId, index),
    });
    await vscode.commands.executeCommand('vscode.diff', before, current, diffTitle(change), { preview: true });
  }

  /** `codenook.agentUndo` for `taskId` (undefined: the server's last task); says what it did. */
  private async undoAgentTask(taskId: string | undefined): Promise<void> {
    const client = this.client;
    const caps = client?.initializeResult?.capabilities;
    if (client === undefined || !this.running) {
      void vscode.window.showWarningMessage('codenook: the server is not running.');
      return;
    }
    if (!serverHasCommand(caps, AGENT_UNDO_COMMAND)) {
      void vscode.window.showWarningMessage(
        `codenook: undoing agent tasks is not available in this server version (it does not offer the ${AGENT_UNDO_COMMAND} command).`,
      );
      return;
    }
    let raw: unknown;
    try {
      raw = await client.sendRequest(ExecuteCommandRequest.type, {
        command: AGENT_UNDO_COMMAND,
        arguments: agentUndoArguments(taskId),
      });
    } catch (error) {
      // E.g. "no agent task to undo", "undone already": the server's words, as a warning.
      void vscode.window.showWarningMessage(`codenook: ${errorText(error)}`);
      return;
    }
    const result = parseUndoResult(raw);
    if (result === undefined) {
      void vscode.window.showWarningMessage(`codenook: unexpected answer to ${AGENT_UNDO_COMMAND}: ${JSON.stringify(raw)}`);
      return;
    }
    const shown = undoMessage(result);
    void (shown.level === 'info' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage)(shown.text);
  }

  /** "Undo Last Agent Task": the last task this window ran (or, with none, the server's last). */
  private undoLastAgentTask(): Promise<void> {
    return this.undoAgentTask(this.lastTaskId);
  }

  /** The "codenook agent" output channel, created when first needed. */
  private transcript(): vscode.OutputChannel {
    if (this.transcriptChannel === undefined) {
      this.transcriptChannel = vscode.window.createOutputChannel('codenook agent');
    }
    return this.transcriptChannel;
  }

  /** `codenook/agentTranscript`: appended to the channel; steps also go to the task's progress. */
  private transcriptNotified(params: unknown): void {
    const entry = parseTranscriptEntry(params);
    if (entry === undefined) {
      this.output.warn(`${TRANSCRIPT_NOTIFICATION} with unexpected params: ${JSON.stringify(params)}`);
      return;
    }
    const text = this.transcriptWriter.write(entry);
    if (text !== '') {
      this.transcript().append(text);
    }
    if (entry.kind === 'task') {
      // The first entry of a task names it: it belongs to the oldest running task of that text
      // that has none yet (or, failing that, to the oldest without one).
      const waiting = this.runningTasks.filter((t) => t.taskId === undefined);
      const owner = waiting.find((t) => t.task === entry.text.trim()) ?? waiting[0];
      if (owner !== undefined) {
        owner.taskId = entry.taskId;
      }
    }
    const message = progressMessage(entry);
    const owner = this.runningTasks.find((t) => t.taskId === entry.taskId);
    if (message !== undefined && owner?.report !== undefined && owner.lastMessage !== message) {
      owner.lastMessage = message;
      owner.report(message);
    }
  }

  dispose(): void {
    this.stopPolling();
    for (const d of this.disposables) {
      d.dispose();
    }
    this.statusItem.dispose();
    this.output.dispose();
    this.transcriptChannel?.dispose();
  }
}

let controller: Controller | undefined;

export function activate(context: vscode.ExtensionContext): Controller {
  controller = new Controller();
  context.subscriptions.push(controller);
  void controller.begin();
  return controller;
}

export async function deactivate(): Promise<void> {
  const c = controller;
  controller = undefined;
  if (c !== undefined) {
    await c.stop();
  }
}
