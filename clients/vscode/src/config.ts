// Pure settings logic: which `codenook.*` keys belong to the server, and how VS Code's values
// become the object the server reads (initializationOptions, didChangeConfiguration,
// workspace/configuration). No `vscode` import here, so node --test can load it directly.

/** One server setting, mirrored from the server's SPECS (`codenook settings`). */
export interface ServerSetting {
  key: string;
  /** 'array': a list of strings. */
  type: 'string' | 'integer' | 'boolean' | 'array';
  /** The server's default; `null` means "unset" (sent as an empty string by VS Code). */
  default: string | number | boolean | null | readonly string[];
  minimum?: number;
  maximum?: number;
  /** The values a string setting may take. */
  enum?: readonly string[];
}

/**
 * Every key the server accepts, in the order of `codenook settings`. A unit test checks that
 * package.json contributes exactly these (plus the client-only keys below) with the same
 * types, defaults and ranges, and, when the repository's `.venv/bin/codenook` exists, that
 * the server still prints the same list.
 */
export const SERVER_SETTINGS: readonly ServerSetting[] = [
  { key: 'model.path', type: 'string', default: null },
  { key: 'model.contextSize', type: 'integer', default: 4096, minimum: 256, maximum: 262144 },
  { key: 'model.threads', type: 'integer', default: 0, minimum: 0, maximum: 1024 },
  { key: 'model.gpuLayers', type: 'integer', default: 0, minimum: -1, maximum: 10000 },
  { key: 'model.batchSize', type: 'integer', default: 512, minimum: 8, maximum: 8192 },
  { key: 'engine.prefixCache', type: 'boolean', default: true },
  { key: 'engine.checkpointMemoryMiB', type: 'integer', default: 1024, minimum: 0, maximum: 1048576 },
  { key: 'engine.mode', type: 'string', default: 'auto', enum: ['auto', 'shared', 'inprocess'] },
  { key: 'engine.idleExitS', type: 'integer', default: 600, minimum: 0, maximum: 604800 },
  { key: 'engine.windows', type: 'integer', default: 4, minimum: 1, maximum: 16 },
  { key: 'engine.backend', type: 'string', default: 'llama', enum: ['llama', 'openai'] },
  { key: 'engine.url', type: 'string', default: null },
  { key: 'engine.model', type: 'string', default: null },
  { key: 'engine.apiKeyEnv', type: 'string', default: null },
  { key: 'engine.timeoutS', type: 'integer', default: 30, minimum: 1, maximum: 3600 },
  { key: 'engine.caFile', type: 'string', default: null },
  { key: 'engine.promptFormat', type: 'string', default: 'auto', enum: ['auto', 'qwen', 'none'] },
  { key: 'completion.enabled', type: 'boolean', default: true },
  { key: 'completion.speculative', type: 'boolean', default: true },
  { key: 'completion.maxTokens', type: 'integer', default: 64, minimum: 1, maximum: 2048 },
  { key: 'completion.maxLines', type: 'integer', default: 8, minimum: 1, maximum: 200 },
  { key: 'completion.timeBudgetMs', type: 'integer', default: 5000, minimum: 50, maximum: 600000 },
  { key: 'completion.alternatives', type: 'integer', default: 3, minimum: 1, maximum: 8 },
  { key: 'hover.enabled', type: 'boolean', default: true },
  { key: 'hover.timeBudgetMs', type: 'integer', default: 2500, minimum: 0, maximum: 600000 },
  { key: 'hover.maxTokens', type: 'integer', default: 96, minimum: 8, maximum: 2048 },
  { key: 'actions.enabled', type: 'boolean', default: true },
  { key: 'actions.maxTokens', type: 'integer', default: 768, minimum: 16, maximum: 32768 },
  { key: 'context.prefixTokens', type: 'integer', default: 1024, minimum: 16, maximum: 131072 },
  { key: 'context.suffixTokens', type: 'integer', default: 256, minimum: 0, maximum: 65536 },
  { key: 'context.headerTokens', type: 'integer', default: 256, minimum: 0, maximum: 65536 },
  { key: 'context.crossFileTokens', type: 'integer', default: 1024, minimum: 0, maximum: 131072 },
  { key: 'index.enabled', type: 'boolean', default: true },
  { key: 'index.maxFileBytes', type: 'integer', default: 1048576, minimum: 1024, maximum: 2147483648 },
  { key: 'index.maxFiles', type: 'integer', default: 20000, minimum: 1, maximum: 10000000 },
  { key: 'index.maxDefinitions', type: 'integer', default: 300000, minimum: 1, maximum: 100000000 },
  { key: 'index.exclude', type: 'array', default: [] },
  { key: 'documents.maxFileBytes', type: 'integer', default: 2097152, minimum: 1024, maximum: 2147483648 },
  { key: 'trace.prompts', type: 'boolean', default: false },
  { key: 'agent.enabled', type: 'boolean', default: true },
  { key: 'agent.edits', type: 'string', default: 'apply', enum: ['apply', 'confirm'] },
  { key: 'agent.allowCommands', type: 'array', default: [] },
  { key: 'agent.maxSteps', type: 'integer', default: 25, minimum: 1, maximum: 1000 },
  { key: 'agent.maxTokens', type: 'integer', default: 16384, minimum: 64, maximum: 10000000 },
  { key: 'agent.stepTokens', type: 'integer', default: 1024, minimum: 16, maximum: 32768 },
  { key: 'agent.timeBudgetS', type: 'integer', default: 900, minimum: 5, maximum: 86400 },
  { key: 'agent.commandTimeoutS', type: 'integer', default: 120, minimum: 1, maximum: 86400 },
  { key: 'agent.outputChars', type: 'integer', default: 8000, minimum: 500, maximum: 1000000 },
  { key: 'agent.readSecrets', type: 'boolean', default: false },
  { key: 'agent.secretFiles', type: 'array', default: [] },
];

/**
 * Server settings forced in an untrusted workspace (VS Code's Restricted Mode): the folder may
 * be hostile, so the server must not walk and parse it in the background. What the editor has
 * open is still completed, explained and refactored. Agent tasks are refused by the extension
 * itself (and the workspace's own agent.allowCommands and agent.readSecrets, and the remote
 * server's engine.backend, engine.url, engine.apiKeyEnv and engine.caFile, are VS Code
 * restrictedConfigurations: a hostile folder must not send your code, or the environment
 * variable of its choosing, to a server of its choosing).
 */
export const RESTRICTED_SETTINGS: Readonly<Record<string, SettingValue>> = { 'index.enabled': false };

/** Keys under `codenook.` that only the extension reads; never sent to the server. */
export const CLIENT_SETTINGS = ['serverCommand', 'enable', 'trace.server'] as const;

export type SettingValue = string | number | boolean | null | readonly string[];
export type FlatSettings = Record<string, SettingValue>;
/** Reads one `codenook.<key>` value, like `workspace.getConfiguration('codenook').get(key)`. */
export type ConfigGetter = (key: string) => unknown;

/**
 * The server's keys as VS Code currently has them, flat (`{"model.path": …}`). Values of the
 * wrong type are passed on unchanged: the server reports them with a message that names the
 * key and falls back to its default, which is better than the client dropping them silently.
 * An unset value (undefined) is left out, so the server keeps its own default.
 */
export function readServerSettings(get: ConfigGetter): FlatSettings {
  const flat: FlatSettings = {};
  for (const spec of SERVER_SETTINGS) {
    const value = get(spec.key);
    if (value === undefined) {
      continue;
    }
    flat[spec.key] = value as SettingValue;
  }
  return flat;
}

/** `{"model.path": x}` → `{model: {path: x}}`: the shape the server documents first. */
export function nest(flat: FlatSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let node = out;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (typeof next !== 'object' || next === null) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

/** What goes into `initialize`'s initializationOptions. */
export function initializationOptions(get: ConfigGetter): Record<string, unknown> {
  return nest(readServerSettings(get));
}

/**
 * The keys whose value differs between two snapshots; a key that disappeared from `next`
 * is sent as the server's default, because the server keeps old values for absent keys.
 */
export function changedSettings(previous: FlatSettings, next: FlatSettings): FlatSettings {
  const changed: FlatSettings = {};
  for (const spec of SERVER_SETTINGS) {
    const before = previous[spec.key];
    const after = spec.key in next ? next[spec.key] : undefined;
    if (after === undefined) {
      if (before !== undefined && before !== spec.default) {
        changed[spec.key] = spec.default;
      }
      continue;
    }
    if (!sameValue(before, after)) {
      changed[spec.key] = after;
    }
  }
  return changed;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The didChangeConfiguration payload for a change, or undefined when nothing changed. */
export function didChangeConfigurationParams(
  previous: FlatSettings,
  next: FlatSettings,
): { settings: { codenook: Record<string, unknown> } } | undefined {
  const changed = changedSettings(previous, next);
  if (Object.keys(changed).length === 0) {
    return undefined;
  }
  return { settings: { codenook: nest(changed) } };
}

/**
 * Answer to a server's `workspace/configuration` request: for the `codenook` section only the
 * server's keys (VS Code would also hand over `serverCommand` and `enable`, which the server
 * would report as unknown settings); for a `codenook.model`-style sub-section, that part.
 */
export function configurationAnswer(section: string | undefined, get: ConfigGetter): unknown {
  const all = initializationOptions(get);
  if (section === undefined || section === 'codenook') {
    return all;
  }
  if (!section.startsWith('codenook.')) {
    return undefined;
  }
  let node: unknown = all;
  for (const part of section.slice('codenook.'.length).split('.')) {
    if (typeof node !== 'object' || node === null) {
      return null;
    }
    node = (node as Record<string, unknown>)[part];
  }
  return node === undefined ? null : node;
}

/**
 * `codenook.enable` is an object of language id → boolean, with `"*"` for the rest (the
 * shape Copilot uses). Anything else counts as enabled, so a typo never silently turns
 * completions off.
 */
export function isLanguageEnabled(enable: unknown, languageId: string): boolean {
  if (typeof enable === 'boolean') {
    return enable;
  }
  if (typeof enable !== 'object' || enable === null) {
    return true;
  }
  const map = enable as Record<string, unknown>;
  if (typeof map[languageId] === 'boolean') {
    return map[languageId] as boolean;
  }
  if (typeof map['*'] === 'boolean') {
    return map['*'] as boolean;
  }
  return true;
}

/**
 * `get` as the server should see it: in an untrusted workspace the keys of RESTRICTED_SETTINGS
 * read as their restricted value whatever the user or the workspace set. Every path to the
 * server (initializationOptions, didChangeConfiguration, workspace/configuration) reads
 * through this.
 */
export function withTrust(get: ConfigGetter, trusted: boolean): ConfigGetter {
  if (trusted) {
    return get;
  }
  return (key) => (Object.prototype.hasOwnProperty.call(RESTRICTED_SETTINGS, key) ? RESTRICTED_SETTINGS[key] : get(key));
}
