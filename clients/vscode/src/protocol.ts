// codenook's additions to LSP, as data: the languages the server advertises in its initialize
// result, and the `codenook/problem` notification it sends instead of window/showMessage. The
// extension never copies the server's language list and never reads the wording of a server
// message. No `vscode` import here, so node --test can load it directly.

/** What the client announces in InitializeParams: `capabilities.experimental.codenook`. */
export const CLIENT_EXPERIMENTAL = { problems: true } as const;

export const PROBLEM_NOTIFICATION = 'codenook/problem';

/** One entry of `capabilities.experimental.codenook.languages` (`codenook languages --json`). */
export interface ServerLanguage {
  name: string;
  /** The language ids the server accepts for it (VS Code's, e.g. `cpp`, `typescriptreact`). */
  languageIds: string[];
  /** File extensions with the dot, e.g. `.py`. */
  extensions: string[];
}

/** The document filters the extension uses (a subset of LSP's TextDocumentFilter). */
export interface DocumentFilter {
  scheme: string;
  language?: string;
  pattern?: string;
}

/**
 * Every file and untitled document: the selector when the server's languages could not be
 * asked before it started (`codenook languages --json` failed: an older server, a wrapper
 * command). The language client opens documents only once the initialize result is in, and
 * by then CodenookFeature has narrowed it to the languages the server advertises there.
 */
export function broadSelector(): DocumentFilter[] {
  return [{ scheme: 'file' }, { scheme: 'untitled' }];
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/**
 * A list of languages as `codenook languages --json` prints it and the initialize result
 * advertises it, checked; undefined when `list` is not a list. Malformed entries are left out.
 */
export function parseLanguages(list: unknown): ServerLanguage[] | undefined {
  if (!Array.isArray(list)) {
    return undefined;
  }
  const out: ServerLanguage[] = [];
  for (const entry of list) {
    const e = entry as Partial<ServerLanguage> | null;
    if (e && typeof e.name === 'string' && isStringArray(e.languageIds)) {
      out.push({ name: e.name, languageIds: e.languageIds, extensions: isStringArray(e.extensions) ? e.extensions : [] });
    }
  }
  return out;
}

/**
 * The languages an initialize result advertises, or undefined when it advertises none (a
 * server older than this field). Malformed entries are left out.
 */
export function advertisedLanguages(capabilities: unknown): ServerLanguage[] | undefined {
  const experimental = (capabilities as { experimental?: unknown } | undefined)?.experimental;
  const codenook = (experimental as { codenook?: unknown } | undefined)?.codenook;
  return parseLanguages((codenook as { languages?: unknown } | undefined)?.languages);
}

/**
 * The output of `codenook languages --json`: the languages, or an Error that says what was
 * wrong with it. An empty list counts as wrong (the server would then never start).
 */
export function parseLanguagesOutput(stdout: string): ServerLanguage[] | Error {
  let decoded: unknown;
  try {
    decoded = JSON.parse(stdout);
  } catch {
    const first = stdout.trim().split('\n')[0] ?? '';
    return new Error(first ? `it printed no JSON: ${first.slice(0, 120)}` : 'it printed nothing');
  }
  const languages = parseLanguages(decoded);
  if (languages === undefined || languages.length === 0) {
    return new Error('it printed no language list');
  }
  return languages;
}

/** What documentWanted reads of a VS Code TextDocument. */
export interface DocumentInfo {
  uri: { scheme: string; path: string };
  languageId: string;
}

/**
 * Whether opening `doc` should start the server: a file or untitled document of one of the
 * server's languages, by language id or (files only) by extension, exactly what
 * `selectorFor(languages)` selects. With `languages` undefined (they could not be asked) any
 * file or untitled document starts it, as before the languages were asked. Other schemes
 * (git, output, vscode-userdata, ...) never do.
 */
export function documentWanted(languages: readonly ServerLanguage[] | undefined, doc: DocumentInfo): boolean {
  const scheme = doc.uri.scheme;
  if (scheme !== 'file' && scheme !== 'untitled') {
    return false;
  }
  if (languages === undefined) {
    return true;
  }
  if (languages.some((l) => l.languageIds.includes(doc.languageId))) {
    return true;
  }
  if (scheme !== 'file') {
    return false;
  }
  const name = doc.uri.path.slice(doc.uri.path.lastIndexOf('/') + 1);
  return languages.some((l) =>
    l.extensions.some((e) => {
      const ext = e.startsWith('.') ? e : `.${e}`;
      return ext.length > 1 && name.endsWith(ext);
    }),
  );
}

/**
 * The document selector for the server's languages: each language id in files and untitled
 * documents, plus the server's file extensions (so that a file VS Code does not know the
 * language of, say `.ipp`, is still served; the server then goes by the extension).
 */
export function selectorFor(languages: readonly ServerLanguage[]): DocumentFilter[] {
  const ids = [...new Set(languages.flatMap((l) => l.languageIds))];
  const selector: DocumentFilter[] = ids.flatMap((language) => [
    { scheme: 'file', language },
    { scheme: 'untitled', language },
  ]);
  const extensions = [...new Set(languages.flatMap((l) => l.extensions))]
    .map((e) => e.replace(/^\./, ''))
    // Glob metacharacters cannot appear in the pattern; no extension of the server has any.
    .filter((e) => e !== '' && !/[*?{}[\],/\\]/.test(e));
  if (extensions.length > 0) {
    const group = extensions.length === 1 ? extensions[0] : `{${extensions.join(',')}}`;
    selector.push({ scheme: 'file', pattern: `**/*.${group}` });
  }
  return selector;
}

/** The server's languages as their names, for the log and Show Status. */
export function languageNames(languages: readonly ServerLanguage[] | undefined): string {
  return languages === undefined ? 'not advertised' : languages.map((l) => l.name).join(', ');
}

/** LSP's MessageType, as `codenook/problem` uses it. */
export enum ProblemType {
  Error = 1,
  Warning = 2,
  Info = 3,
  Log = 4,
}

/** `codenook/problem` params. `code` says what went wrong, `setting` which key fixes it. */
export interface ServerProblem {
  type: ProblemType;
  message: string;
  code: string;
  /** A server setting key such as `model.path`, or null when no setting is involved. */
  setting: string | null;
}

/** Checks the notification's params; undefined for anything that is not a problem. */
export function parseProblem(params: unknown): ServerProblem | undefined {
  const p = params as Partial<ServerProblem> | null | undefined;
  if (!p || typeof p.message !== 'string') {
    return undefined;
  }
  const type = p.type === 1 || p.type === 2 || p.type === 3 || p.type === 4 ? p.type : ProblemType.Error;
  const setting = typeof p.setting === 'string' && /^[A-Za-z][A-Za-z0-9.]*$/.test(p.setting) ? p.setting : null;
  return { type, message: p.message, code: typeof p.code === 'string' ? p.code : '', setting };
}

/** How VS Code shows it: error, warning, or information (Info and Log). */
export function problemLevel(problem: ServerProblem): 'error' | 'warning' | 'info' {
  return problem.type === ProblemType.Error ? 'error' : problem.type === ProblemType.Warning ? 'warning' : 'info';
}

/** The VS Code setting that "Open Setting" opens, e.g. `codenook.model.path`; undefined if none. */
export function problemSettingId(problem: ServerProblem): string | undefined {
  return problem.setting === null ? undefined : `codenook.${problem.setting}`;
}
