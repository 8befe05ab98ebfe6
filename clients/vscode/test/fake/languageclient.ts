// A fake `vscode-languageclient/node`: records how the extension builds and drives its
// LanguageClient, and lets a test play the server (start outcome, requests, notifications).

export enum CloseAction {
  DoNotRestart = 1,
  Restart = 2,
}

export enum ErrorAction {
  Continue = 1,
  Shutdown = 2,
}

export enum RevealOutputChannelOn {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
  Never = 4,
}

export class ResponseError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export const DidChangeConfigurationNotification = { type: { method: 'workspace/didChangeConfiguration' } };
export const ExecuteCommandRequest = { type: { method: 'workspace/executeCommand' } };

export type ServerOptions = unknown;
export type ClientCapabilities = Record<string, unknown>;
export type ServerCapabilities = Record<string, unknown>;
export type DocumentSelector = unknown[];
export type FeatureState = { kind: 'static' };
export type StaticFeature = LanguageClient['features'][number];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type LanguageClientOptions = any;
export type CloseHandlerResult = { action: CloseAction; message?: string; handled?: boolean };

type Method = string | { method: string };
const methodOf = (m: Method) => (typeof m === 'string' ? m : m.method);

export const errors: { message: string; shown: boolean }[] = [];

export const server = {
  clients: [] as LanguageClient[],
  /** Start outcome for the next clients: undefined resolves, an Error rejects. */
  startError: undefined as Error | undefined,
  capabilities: {} as Record<string, unknown>,
  /** Answers to client requests, by method. */
  handlers: new Map<string, (params: unknown, token?: unknown) => unknown>(),
  reset(): void {
    this.clients = [];
    this.startError = undefined;
    this.capabilities = {};
    this.handlers.clear();
    errors.length = 0;
  },
  get last(): LanguageClient {
    return this.clients[this.clients.length - 1];
  },
};

export class LanguageClient {
  notificationHandlers = new Map<string, (params: unknown) => void>();
  sent: { method: string; params: unknown }[] = [];
  requests: { method: string; params: unknown }[] = [];
  started = false;
  disposed = false;
  initializeResult: { capabilities: Record<string, unknown>; serverInfo?: { name: string; version?: string } } | undefined;
  initializationOptionsSent: unknown;
  /** InitializeParams.capabilities as the registered features filled them in. */
  capabilitiesSent: Record<string, unknown> | undefined;
  features: {
    fillClientCapabilities(capabilities: Record<string, unknown>): void;
    preInitialize?(capabilities: Record<string, unknown>, selector: unknown): void;
    initialize(capabilities: Record<string, unknown>, selector: unknown): void;
  }[] = [];
  code2ProtocolConverter = {
    asUri: (uri: { toString(): string }) => uri.toString(),
    asRange: (r: unknown) => r,
  };

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: { command: string; args: string[]; options?: unknown },
    readonly clientOptions: LanguageClientOptions,
  ) {
    server.clients.push(this);
  }

  /** Like the real client's: log, and show a notification when asked to. */
  error(message: string, _data?: unknown, showNotification: boolean | 'force' = true): void {
    errors.push({ message, shown: showNotification !== false });
  }

  onNotification(type: Method, handler: (params: unknown) => void) {
    this.notificationHandlers.set(methodOf(type), handler);
    return { dispose: () => this.notificationHandlers.delete(methodOf(type)) };
  }

  registerFeature(feature: LanguageClient['features'][number]): void {
    this.features.push(feature);
  }

  /** Like the real client: capabilities from the features, initialize, then the features'
   * preInitialize and initialize with the selector array the client was built with. */
  async start(): Promise<void> {
    const init = this.clientOptions.initializationOptions;
    this.initializationOptionsSent = typeof init === 'function' ? init() : init;
    const capabilities: Record<string, unknown> = { experimental: { other: true } };
    for (const feature of this.features) {
      feature.fillClientCapabilities(capabilities);
    }
    this.capabilitiesSent = capabilities;
    if (server.startError) {
      throw server.startError;
    }
    this.initializeResult = { capabilities: server.capabilities, serverInfo: { name: 'codenook', version: '0.1.0' } };
    const selector = this.clientOptions.documentSelector;
    for (const feature of this.features) {
      feature.preInitialize?.(server.capabilities, selector);
    }
    for (const feature of this.features) {
      feature.initialize(server.capabilities, selector);
    }
    this.started = true;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.started = false;
  }

  async stop(): Promise<void> {
    await this.dispose();
  }

  async sendRequest(type: Method, params?: unknown, token?: unknown): Promise<unknown> {
    const method = methodOf(type);
    this.requests.push({ method, params });
    const handler = server.handlers.get(method);
    if (!handler) {
      throw new Error(`fake server: no handler for ${method}`);
    }
    return handler(params, token);
  }

  async sendNotification(type: Method, params?: unknown): Promise<void> {
    this.sent.push({ method: methodOf(type), params });
  }

  /** Test helper: the server sends a notification. */
  notify(method: string, params: unknown): void {
    const handler = this.notificationHandlers.get(method);
    if (!handler) {
      throw new Error(`no handler for ${method}`);
    }
    handler(params);
  }
}
