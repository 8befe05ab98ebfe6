// A fake of the small part of the `vscode` API that the extension uses. The test build
// (scripts/build.mjs --tests) aliases `vscode` to this file. Tests drive it through `fake`.

type Listener<T> = (value: T) => unknown;

export interface ShownMessage {
  level: 'error' | 'warning' | 'info';
  message: string;
  buttons: string[];
}

/** A text document as the extension reads it: its uri (scheme, path) and language id. */
export interface FakeDocument {
  uri: { scheme: string; path: string; fsPath: string; toString(): string };
  languageId: string;
}

/** A document for `fake.documents` / `fake.openDocument`: `doc('python', '/w/a.py')`. */
export function doc(languageId: string, path: string, scheme = 'file'): FakeDocument {
  return { uri: { scheme, path, fsPath: path, toString: () => `${scheme}://${path}` }, languageId };
}

export const fake = {
  settings: new Map<string, unknown>(),
  messages: [] as ShownMessage[],
  /** What the next message box returns (a button label), by default nothing. */
  answerMessage: undefined as string | undefined,
  answerInputBox: undefined as string | undefined,
  inputBoxes: [] as unknown[],
  quickPicks: [] as { items: unknown[]; options: unknown }[],
  answerQuickPick: undefined as ((items: unknown[]) => unknown) | undefined,
  executed: [] as { command: string; args: unknown[] }[],
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  statusItems: [] as FakeStatusBarItem[],
  configListeners: [] as Listener<{ affectsConfiguration(section: string): boolean }>[],
  workspaceFolders: undefined as { uri: { scheme: string; fsPath: string } }[] | undefined,
  /** The documents open in the editor (workspace.textDocuments). */
  documents: [] as FakeDocument[],
  openListeners: [] as Listener<FakeDocument>[],
  /** workspace.isTrusted: false is Restricted Mode. */
  trusted: true,
  trustListeners: [] as Listener<void>[],
  log: [] as string[],
  /** The text appended to each plain (non-log) output channel, by name. */
  channels: new Map<string, string>(),
  /** The output channels shown, by name, in order (with their preserveFocus). */
  channelsShown: [] as { name: string; preserveFocus: boolean | undefined }[],
  /** window.withProgress calls: their options, the messages reported, and their Cancel. */
  progress: [] as { options: Record<string, unknown>; messages: string[]; cancel(): void; done: boolean }[],
  /** Called with each new withProgress entry (e.g. to press Cancel). */
  onProgress: undefined as ((entry: { cancel(): void }) => void) | undefined,
  contentProviders: new Map<string, { provideTextDocumentContent(uri: Uri): string | undefined }>(),
  /** window.showTextDocument calls. */
  shownDocuments: [] as { uri: Uri; options: unknown }[],
  reset(): void {
    this.settings.clear();
    this.messages = [];
    this.answerMessage = undefined;
    this.answerInputBox = undefined;
    this.inputBoxes = [];
    this.quickPicks = [];
    this.answerQuickPick = undefined;
    this.executed = [];
    this.commands.clear();
    this.statusItems = [];
    this.configListeners = [];
    this.workspaceFolders = undefined;
    this.documents = [];
    this.openListeners = [];
    this.trusted = true;
    this.trustListeners = [];
    this.log = [];
    this.channels = new Map();
    this.channelsShown = [];
    this.progress = [];
    this.onProgress = undefined;
    this.contentProviders = new Map();
    this.shownDocuments = [];
  },
  /** Open a document: it joins textDocuments and onDidOpenTextDocument fires. */
  openDocument(document: FakeDocument): void {
    this.documents.push(document);
    for (const l of this.openListeners) {
      l(document);
    }
  },
  /** The user trusts the workspace: isTrusted turns true and onDidGrantWorkspaceTrust fires. */
  grantTrust(): void {
    this.trusted = true;
    for (const l of this.trustListeners) {
      l();
    }
  },
  /** Change settings and fire onDidChangeConfiguration for them. */
  changeSettings(values: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(values)) {
      this.settings.set(k, v);
    }
    const keys = Object.keys(values).map((k) => `codenook.${k}`);
    const event = {
      affectsConfiguration: (section: string) =>
        keys.some((k) => k === section || k.startsWith(`${section}.`)),
    };
    for (const l of this.configListeners) {
      l(event);
    }
  },
};

/** A URI as the extension builds and reads them (parse, from, scheme/path/query, toString). */
export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
    readonly query: string,
  ) {}
  static parse(value: string): Uri {
    const m = /^([a-z][\w+.-]*):(?:\/\/[^/?#]*)?([^?#]*)(?:\?([^#]*))?/i.exec(value);
    if (!m) {
      throw new Error(`fake Uri.parse: not a URI: ${value}`);
    }
    return new Uri(m[1], decodeURIComponent(m[2]), m[3] ?? '');
  }
  static from(parts: { scheme: string; path?: string; query?: string }): Uri {
    return new Uri(parts.scheme, parts.path ?? '', parts.query ?? '');
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.path}${this.query ? `?${this.query}` : ''}`;
  }
}

class FakeDisposable {
  constructor(private readonly fn: () => void = () => {}) {}
  dispose(): void {
    this.fn();
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum QuickPickItemKind {
  Separator = -1,
  Default = 0,
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export class FakeStatusBarItem {
  text = '';
  tooltip: unknown = '';
  name: string | undefined;
  command: unknown;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  constructor(
    readonly id: string,
    readonly alignment: StatusBarAlignment,
    readonly priority: number,
  ) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

function message(level: ShownMessage['level']) {
  return (text: string, ...buttons: unknown[]): Promise<string | undefined> => {
    const labels = buttons.filter((b): b is string => typeof b === 'string');
    fake.messages.push({ level, message: text, buttons: labels });
    const answer = fake.answerMessage;
    return Promise.resolve(answer !== undefined && labels.includes(answer) ? answer : undefined);
  };
}

export const window = {
  activeTextEditor: undefined as unknown,
  createOutputChannel(name: string, options?: { log?: boolean }) {
    const line = (level: string) => (text: string) => fake.log.push(`${level}: ${text}`);
    const plain = options?.log !== true;
    const add = (text: string) => {
      if (plain) {
        fake.channels.set(name, (fake.channels.get(name) ?? '') + text);
      }
    };
    return {
      name,
      info: line('info'),
      warn: line('warn'),
      error: line('error'),
      debug: line('debug'),
      trace: line('trace'),
      appendLine: (text: string) => {
        line('line')(text);
        add(`${text}\n`);
      },
      append: (text: string) => {
        line('text')(text);
        add(text);
      },
      show(preserveFocus?: boolean) {
        fake.channelsShown.push({ name, preserveFocus });
      },
      hide() {},
      clear() {},
      dispose() {},
    };
  },
  createStatusBarItem(id: string, alignment: StatusBarAlignment, priority: number) {
    const item = new FakeStatusBarItem(id, alignment, priority);
    fake.statusItems.push(item);
    return item;
  },
  showErrorMessage: message('error'),
  showWarningMessage: message('warning'),
  showInformationMessage: message('info'),
  showInputBox(options: unknown): Promise<string | undefined> {
    fake.inputBoxes.push(options);
    return Promise.resolve(fake.answerInputBox);
  },
  showQuickPick(items: unknown[], options: unknown): Promise<unknown> {
    fake.quickPicks.push({ items, options });
    return Promise.resolve(fake.answerQuickPick ? fake.answerQuickPick(items) : undefined);
  },
  async withProgress<T>(
    options: Record<string, unknown>,
    task: (progress: { report(value: { message?: string }): void }, token: unknown) => Promise<T>,
  ): Promise<T> {
    const listeners: (() => void)[] = [];
    const token = {
      isCancellationRequested: false,
      onCancellationRequested(listener: () => void) {
        listeners.push(listener);
        return new FakeDisposable();
      },
    };
    const entry = {
      options,
      messages: [] as string[],
      done: false,
      cancel() {
        token.isCancellationRequested = true;
        for (const l of listeners) {
          l();
        }
      },
    };
    fake.progress.push(entry);
    fake.onProgress?.(entry);
    try {
      return await task({ report: (value) => value.message !== undefined && entry.messages.push(value.message) }, token);
    } finally {
      entry.done = true;
    }
  },
  showTextDocument(uri: Uri, options?: unknown): Promise<unknown> {
    fake.shownDocuments.push({ uri, options });
    return Promise.resolve(undefined);
  },
};

export const commands = {
  registerCommand(id: string, fn: (...args: unknown[]) => unknown) {
    if (fake.commands.has(id)) {
      throw new Error(`command '${id}' already exists`);
    }
    fake.commands.set(id, fn);
    return new FakeDisposable(() => fake.commands.delete(id));
  },
  executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    fake.executed.push({ command, args });
    const own = fake.commands.get(command);
    return Promise.resolve(own ? own(...args) : undefined);
  },
};

export const workspace = {
  getConfiguration(section: string) {
    if (section !== 'codenook') {
      throw new Error(`unexpected configuration section ${section}`);
    }
    return {
      get(key: string, defaultValue?: unknown) {
        return fake.settings.has(key) ? fake.settings.get(key) : defaultValue;
      },
    };
  },
  onDidChangeConfiguration(listener: Listener<{ affectsConfiguration(section: string): boolean }>) {
    fake.configListeners.push(listener);
    return new FakeDisposable(() => {
      fake.configListeners = fake.configListeners.filter((l) => l !== listener);
    });
  },
  get workspaceFolders() {
    return fake.workspaceFolders;
  },
  get textDocuments() {
    return [...fake.documents];
  },
  onDidOpenTextDocument(listener: Listener<FakeDocument>) {
    fake.openListeners.push(listener);
    return new FakeDisposable(() => {
      fake.openListeners = fake.openListeners.filter((l) => l !== listener);
    });
  },
  registerTextDocumentContentProvider(scheme: string, provider: { provideTextDocumentContent(uri: Uri): string | undefined }) {
    fake.contentProviders.set(scheme, provider);
    return new FakeDisposable(() => fake.contentProviders.delete(scheme));
  },
  get isTrusted() {
    return fake.trusted;
  },
  onDidGrantWorkspaceTrust(listener: Listener<void>) {
    fake.trustListeners.push(listener);
    return new FakeDisposable(() => {
      fake.trustListeners = fake.trustListeners.filter((l) => l !== listener);
    });
  },
};
