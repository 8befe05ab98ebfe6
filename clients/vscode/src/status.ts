// Pure formatting of the server's `codenook/status` notification and `codenook/stats` answer
// (docs/architecture.md, "Custom LSP messages"). No `vscode` import.

/** `codenook/status` params; `stats` answers carry the same fields and more. */
export interface ServerStatus {
  state: string;
  queueLength?: number;
  tokensPerSecond?: number;
  error?: string | null;
}

/** What the extension itself knows about the server process. */
export type ClientState =
  /** Not started: it starts when a document of one of `languages` opens (see documentWanted). */
  | { kind: 'waiting'; languages?: string }
  | { kind: 'starting' }
  | { kind: 'running'; status?: ServerStatus }
  | { kind: 'notRunning'; reason: string };

export interface StatusBarView {
  text: string;
  tooltip: string;
  /** 'warning' → statusBarItem.warningBackground, 'error' → statusBarItem.errorBackground */
  background?: 'warning' | 'error';
}

function speed(status: ServerStatus): string {
  const tps = status.tokensPerSecond;
  return typeof tps === 'number' && tps > 0 ? ` · ${formatNumber(tps)} tok/s` : '';
}

function queued(status: ServerStatus): string {
  const n = status.queueLength;
  return typeof n === 'number' && n > 0 ? ` · ${n} queued` : '';
}

function formatNumber(value: number): string {
  return value >= 100 ? String(Math.round(value)) : value.toFixed(1);
}

/** The status bar item's text (with a codicon), tooltip and background. */
export function statusBarView(state: ClientState, model?: string | null): StatusBarView {
  const modelLine = model ? `\nModel: ${model}` : '';
  const click = '\nClick for details.';
  if (state.kind === 'waiting') {
    const which = state.languages ? `a file of its languages (${state.languages})` : 'a file';
    return {
      text: '$(circle-outline) codenook',
      tooltip: `codenook: not started; the server (and its model) starts when ${which} opens${click}`,
    };
  }
  if (state.kind === 'starting') {
    return {
      text: '$(loading~spin) codenook: starting',
      tooltip: `codenook: starting the language server${click}`,
    };
  }
  if (state.kind === 'notRunning') {
    return {
      text: '$(error) codenook: not running',
      tooltip: `codenook is not running: ${state.reason}${click}`,
      background: 'error',
    };
  }
  const status = state.status;
  if (status === undefined) {
    return {
      text: '$(loading~spin) codenook: starting',
      tooltip: `codenook: waiting for the server's first status${click}`,
    };
  }
  switch (status.state) {
    case 'starting':
      return {
        text: '$(loading~spin) codenook: starting',
        tooltip: `codenook: the server is starting${click}`,
      };
    case 'loading':
      return {
        text: '$(loading~spin) codenook: loading model',
        tooltip: `codenook: loading the model; completions start when it is ready${modelLine}${click}`,
      };
    case 'idle':
      return {
        text: `$(check) codenook: idle${speed(status)}`,
        tooltip: `codenook: ready${modelLine}${lastSpeed(status)}${click}`,
      };
    case 'generating':
      return {
        text: `$(sync~spin) codenook: generating${speed(status)}${queued(status)}`,
        tooltip: `codenook: generating${modelLine}${lastSpeed(status)}${click}`,
      };
    case 'failed':
      return {
        text: '$(warning) codenook: model failed',
        tooltip:
          `codenook: the model is unavailable: ${status.error ?? 'unknown error'}\n` +
          'Fix codenook.model.path (or the other model.* settings).' +
          click,
        background: 'warning',
      };
    case 'stopped':
      return {
        text: '$(circle-slash) codenook: stopped',
        tooltip: `codenook: the engine is stopped${click}`,
      };
    default:
      return {
        text: `$(question) codenook: ${status.state}`,
        tooltip: `codenook: ${status.state}${click}`,
      };
  }
}

function lastSpeed(status: ServerStatus): string {
  const tps = status.tokensPerSecond;
  return typeof tps === 'number' && tps > 0
    ? `\nLast completion: ${formatNumber(tps)} tokens/s`
    : '';
}

/**
 * Whether a `codenook/stats` answer polled at start-up should still be shown: the server
 * only notifies when loading has ended, so until the first notification the client asks
 * `codenook/stats`. A poll answer never overrides a notification that came first. Before
 * the engine has started the server answers `starting` (older servers: `stopped`), which
 * means "not initialized yet", not "shut down".
 */
export function statusFromPoll(stats: ServerStatus): ServerStatus | undefined {
  if (stats.state === 'starting' || stats.state === 'stopped') {
    return undefined;
  }
  return {
    state: stats.state,
    queueLength: stats.queueLength,
    tokensPerSecond: stats.tokensPerSecond,
    error: stats.error ?? null,
  };
}

/** Whether a start-up poll of `codenook/stats` should go on after this state. */
export function keepPolling(status: ServerStatus | undefined): boolean {
  return status === undefined || status.state === 'loading';
}

export interface SummaryLine {
  label: string;
  detail?: string;
}

type Json = Record<string, unknown>;

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function ms(value: unknown): string {
  const n = num(value);
  return n === undefined ? '–' : `${n >= 100 ? Math.round(n) : n.toFixed(1)} ms`;
}

/** A short human summary of a `codenook/stats` answer, one line per item. */
export function statsSummary(stats: Json): SummaryLine[] {
  const lines: SummaryLine[] = [];
  const state = String(stats.state ?? 'unknown');
  const status: ServerStatus = {
    state,
    queueLength: num(stats.queueLength),
    tokensPerSecond: num(stats.tokensPerSecond),
    error: typeof stats.error === 'string' ? stats.error : null,
  };
  lines.push({
    label: `State: ${state}${speed(status)}${queued(status)}`,
    detail: status.error ? `Error: ${status.error}` : undefined,
  });
  if (typeof stats.model === 'string') {
    const arch = typeof stats.architecture === 'string' ? ` (${stats.architecture})` : '';
    lines.push({ label: `Model: ${basename(stats.model)}${arch}`, detail: stats.model });
  }
  const cc = stats.completionCounters as Json | undefined;
  if (cc && typeof cc === 'object') {
    const parts = [
      `${num(cc.requests) ?? 0} requests`,
      `${num(cc.typedThrough) ?? 0} typed through`,
    ];
    if (num(cc.speculativeHits) !== undefined) {
      parts.push(`${cc.speculativeHits} speculative hits`);
    }
    parts.push(`${num(cc.empty) ?? 0} empty`);
    lines.push({ label: `Completions: ${parts.join(', ')}` });
  }
  const counters = stats.counters as Json | undefined;
  if (counters && typeof counters === 'object') {
    const prompt = num(counters.prompt_tokens) ?? 0;
    const cached = num(counters.cached_tokens) ?? 0;
    const share = prompt > 0 ? ` (${Math.round((100 * cached) / prompt)}% cached)` : '';
    lines.push({
      label: `Engine: ${prompt} prompt tokens${share}, ${num(counters.generated_tokens) ?? 0} generated, ${num(counters.cancelled) ?? 0} cancelled`,
    });
  }
  const last = stats.lastCompletion as Json | undefined | null;
  if (last && typeof last === 'object') {
    const stop = typeof last.stop_reason === 'string' ? `, stop: ${last.stop_reason}` : '';
    lines.push({
      label: `Last completion: ${ms(last.total_ms)} total${stop}`,
      detail:
        `context ${ms(last.context_ms)}, queued ${ms(last.queued_ms)}, prefill ${ms(last.prefill_ms)}, ` +
        `decode ${ms(last.decode_ms)}; ${num(last.prompt_tokens) ?? 0} prompt tokens, ` +
        `${num(last.cached_tokens) ?? 0} cached, ${num(last.generated_tokens) ?? 0} generated`,
    });
  }
  return lines;
}

function basename(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i >= 0 ? p.slice(i + 1) : p;
}
