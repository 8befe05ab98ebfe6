// Pure helpers for agent tasks (`codenook.agentTask`, `codenook.agentUndo` and the
// `codenook/agentTranscript` notification): reading what the server sends and turning it into
// text, messages and quick-pick items. No `vscode` import; extension.ts wires them.

export const AGENT_UNDO_COMMAND = 'codenook.agentUndo';
export const TRANSCRIPT_NOTIFICATION = 'codenook/agentTranscript';
/** The private scheme of the read-only "before the task" side of a diff. */
export const ORIGINAL_SCHEME = 'codenook-original';
export const SHOW_CHANGES = 'Show changes';
export const UNDO_TASK = 'Undo task';
/** Originals kept for this many finished tasks (their texts can be large). */
export const KEPT_TASKS = 20;

// -- the transcript ------------------------------------------------------------------------------

export interface TranscriptEntry {
  taskId: string;
  kind: string;
  text: string;
}

/** `codenook/agentTranscript` params, or undefined when they are not `{taskId, kind, text}`. */
export function parseTranscriptEntry(params: unknown): TranscriptEntry | undefined {
  if (typeof params !== 'object' || params === null) {
    return undefined;
  }
  const p = params as Record<string, unknown>;
  if (typeof p.taskId !== 'string' || typeof p.kind !== 'string' || typeof p.text !== 'string') {
    return undefined;
  }
  return { taskId: p.taskId, kind: p.kind, text: p.text };
}

/** The prefix of a whole entry, by kind; an unknown kind is written as `kind: `. */
const PREFIX: Record<string, string> = {
  task: '■ task: ',
  call: '▶ ',
  result: '◀ ',
  error: '✖ ',
  status: '· ',
  summary: '✔ ',
};

/**
 * Turns transcript entries into the text appended to the "codenook agent" output channel:
 * model deltas inline as they come, every other entry on lines of its own with a short prefix
 * (continuation lines indented under it). A new task starts after a blank line; a model delta
 * of a task other than the last one written starts a line of its own, marked with the task.
 */
export class TranscriptWriter {
  private atLineStart = true;
  private empty = true;
  private lastTask: string | undefined;

  /** The text to append for `entry` (no newline is added to a model delta). */
  write(entry: TranscriptEntry): string {
    let out = '';
    const newLine = () => (this.atLineStart ? '' : '\n');
    if (entry.kind === 'model') {
      if (entry.text === '') {
        return '';
      }
      if (this.lastTask !== undefined && entry.taskId !== this.lastTask) {
        out += `${newLine()}[task ${entry.taskId}] `;
      }
      out += entry.text;
    } else {
      if (entry.kind === 'task' && !this.empty) {
        out += `${newLine()}\n`;
      } else {
        out += newLine();
      }
      const prefix = PREFIX[entry.kind] ?? `${entry.kind}: `;
      const indent = ' '.repeat(Math.min([...prefix].length, 4));
      const lines = entry.text.replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n');
      out += `${prefix}${lines.map((line, i) => (i === 0 || line === '' ? line : indent + line)).join('\n')}\n`;
    }
    this.lastTask = entry.taskId;
    this.empty = false;
    this.atLineStart = out.endsWith('\n');
    return out;
  }
}

/**
 * What the task's progress notification says after `entry`: the first line of a tool call,
 * status or error (shortened), "the model is writing…" for model text, nothing for the rest.
 */
export function progressMessage(entry: TranscriptEntry, max = 80): string | undefined {
  if (entry.kind === 'model') {
    return 'the model is writing…';
  }
  if (entry.kind !== 'call' && entry.kind !== 'status' && entry.kind !== 'error') {
    return undefined;
  }
  const first = entry.text.trim().split('\n')[0] ?? '';
  const line = entry.kind === 'call' ? `${PREFIX.call}${first}` : first;
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

// -- the task's answer ---------------------------------------------------------------------------

export interface AgentChange {
  uri: string;
  /** Workspace-relative. */
  path: string;
  created: boolean;
  /** The text before the task; null for a file the task created. */
  original: string | null;
}

export interface AgentResult {
  taskId: string;
  /** "done", "cancelled", "failed" or "budget". */
  status: string;
  summary: string;
  message: string;
  steps: number;
  changes: AgentChange[];
}

function parseChange(raw: unknown): AgentChange | undefined {
  if (typeof raw !== 'object' || raw === null) {
    return undefined;
  }
  const c = raw as Record<string, unknown>;
  if (typeof c.uri !== 'string') {
    return undefined;
  }
  const original = typeof c.original === 'string' ? c.original : null;
  return {
    uri: c.uri,
    path: typeof c.path === 'string' && c.path !== '' ? c.path : c.uri,
    created: c.created === true || (c.created === undefined && original === null),
    original,
  };
}

/** The answer to `codenook.agentTask`, or undefined when it is not one (no taskId or status). */
export function parseAgentResult(raw: unknown): AgentResult | undefined {
  if (typeof raw !== 'object' || raw === null) {
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  if (typeof r.taskId !== 'string' || typeof r.status !== 'string') {
    return undefined;
  }
  const changes = Array.isArray(r.changes)
    ? r.changes.map(parseChange).filter((c): c is AgentChange => c !== undefined)
    : [];
  return {
    taskId: r.taskId,
    status: r.status,
    summary: typeof r.summary === 'string' ? r.summary : '',
    message: typeof r.message === 'string' ? r.message : '',
    steps: typeof r.steps === 'number' ? r.steps : 0,
    changes,
  };
}

function files(n: number): string {
  return n === 1 ? '1 file' : `${n} files`;
}

export interface ShownResult {
  level: 'info' | 'warning';
  text: string;
  buttons: string[];
}

/**
 * The message shown when a task ends: its summary with "Show changes" and "Undo task" (those
 * only when it changed something) for "done"; a warning with the server's message for
 * "cancelled", "failed", "budget" (or any other status), with the same buttons when it had
 * already changed files.
 */
export function resultMessage(result: AgentResult): ShownResult {
  const n = result.changes.length;
  const buttons = n > 0 ? [SHOW_CHANGES, UNDO_TASK] : [];
  const changed = n > 0 ? ` (${files(n)} changed, unsaved)` : '';
  if (result.status === 'done') {
    const text = result.summary.trim() || result.message.trim() || 'the agent task is done.';
    return { level: 'info', text: `codenook: ${text}${changed}`, buttons };
  }
  const what =
    result.status === 'cancelled'
      ? 'was cancelled'
      : result.status === 'budget'
        ? 'ran out of budget'
        : result.status === 'failed'
          ? 'failed'
          : `ended (${result.status})`;
  const why = result.message.trim() || result.summary.trim();
  return { level: 'warning', text: `codenook: the agent task ${what}${why ? `: ${why}` : '.'}${changed}`, buttons };
}

export interface ChangeItem {
  label: string;
  description: string;
  change: AgentChange;
}

/** The "Show changes" quick pick: one item per changed file, created ones marked. */
export function changeItems(changes: readonly AgentChange[]): ChangeItem[] {
  return changes.map((change) => ({
    label: change.path,
    description: change.created ? 'created' : 'changed',
    change,
  }));
}

/** The diff editor's title for a changed file. */
export function diffTitle(change: AgentChange): string {
  return `${change.path} (before the agent task ↔ now)`;
}

/**
 * The key of a change's original text, for the `codenook-original` document that shows it
 * (the query of its URI; the path keeps the file name, so the diff gets its language).
 */
export function originalKey(taskId: string, index: number): string {
  return `task=${encodeURIComponent(taskId)}&file=${index}`;
}

/**
 * The originals of the last `KEPT_TASKS` tasks, by originalKey: what the `codenook-original`
 * documents show. Adding a task beyond the limit forgets the oldest.
 */
export class Originals {
  private readonly byTask = new Map<string, Map<string, string>>();

  constructor(private readonly keep = KEPT_TASKS) {}

  add(result: AgentResult): void {
    const texts = new Map<string, string>();
    result.changes.forEach((change, i) => {
      if (change.original !== null) {
        texts.set(originalKey(result.taskId, i), change.original);
      }
    });
    this.byTask.delete(result.taskId);
    this.byTask.set(result.taskId, texts);
    while (this.byTask.size > this.keep) {
      const oldest = this.byTask.keys().next().value as string;
      this.byTask.delete(oldest);
    }
  }

  get(key: string): string | undefined {
    for (const texts of this.byTask.values()) {
      const text = texts.get(key);
      if (text !== undefined) {
        return text;
      }
    }
    return undefined;
  }
}

// -- undo ---------------------------------------------------------------------------------------

export interface UndoRefusal {
  uri: string;
  path: string;
  reason: string;
}

export interface UndoResult {
  restored: string[];
  refused: UndoRefusal[];
  message: string;
}

/** The arguments of `codenook.agentUndo`: the task, or none for the server's last task. */
export function agentUndoArguments(taskId: string | undefined): unknown[] {
  return [taskId === undefined ? {} : { taskId }];
}

/** The answer to `codenook.agentUndo`, or undefined when it is not one. */
export function parseUndoResult(raw: unknown): UndoResult | undefined {
  if (typeof raw !== 'object' || raw === null) {
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  if (!Array.isArray(r.restored) && !Array.isArray(r.refused) && typeof r.message !== 'string') {
    return undefined;
  }
  const restored = Array.isArray(r.restored) ? r.restored.filter((u): u is string => typeof u === 'string') : [];
  const refused: UndoRefusal[] = [];
  for (const item of Array.isArray(r.refused) ? r.refused : []) {
    if (typeof item === 'object' && item !== null) {
      const f = item as Record<string, unknown>;
      const uri = typeof f.uri === 'string' ? f.uri : '';
      refused.push({
        uri,
        path: typeof f.path === 'string' && f.path !== '' ? f.path : uri,
        reason: typeof f.reason === 'string' ? f.reason : '',
      });
    }
  }
  return { restored, refused, message: typeof r.message === 'string' ? r.message : '' };
}

/**
 * The message after an undo: the server's own message when it has one, otherwise what was
 * restored and what was refused (and why); a warning when a file was refused.
 */
export function undoMessage(result: UndoResult): { level: 'info' | 'warning'; text: string } {
  const level = result.refused.length > 0 ? 'warning' : 'info';
  if (result.message.trim() !== '') {
    return { level, text: `codenook: ${result.message.trim()}` };
  }
  const parts: string[] = [];
  if (result.restored.length > 0 || result.refused.length === 0) {
    parts.push(`restored ${files(result.restored.length)}`);
  }
  if (result.refused.length > 0) {
    const named = result.refused.map((f) => (f.reason ? `${f.path} (${f.reason})` : f.path)).join(', ');
    parts.push(`not restored: ${named}`);
  }
  return { level, text: `codenook: undo: ${parts.join('; ')}.` };
}
