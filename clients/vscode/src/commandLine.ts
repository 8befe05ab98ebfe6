// Pure logic for `codenook.serverCommand`: parse it, resolve it, and check that it can run.
// Only node's fs and path are used (no `vscode`), so node --test loads it directly.

import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_SERVER_COMMAND = 'codenook serve';

export interface ServerCommand {
  command: string;
  args: string[];
}

export class CommandLineError extends Error {}

/**
 * Split a command line the way a POSIX shell would for the simple cases people write in a
 * settings file: whitespace separates words, single quotes keep everything literally, double
 * quotes keep spaces (backslash escapes `"`, `\`, `$` and `` ` `` inside them), a backslash
 * outside quotes escapes the next character. No variables, globs or pipes.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) {
        throw new CommandLineError(`unterminated ' in: ${line}`);
      }
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      let closed = false;
      while (i < line.length) {
        const d = line[i];
        if (d === '"') {
          closed = true;
          i += 1;
          break;
        }
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) {
          word += line[i + 1];
          i += 2;
          continue;
        }
        word += d;
        i += 1;
      }
      if (!closed) {
        throw new CommandLineError(`unterminated " in: ${line}`);
      }
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
      i += 1;
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}

export interface ResolveContext {
  /** The first workspace folder's path, for `${workspaceFolder}` and relative programs. */
  workspaceFolder?: string;
  home?: string;
}

/**
 * `codenook.serverCommand` (a string or an array of strings) → program and arguments, with
 * `~` and `${workspaceFolder}` / `${userHome}` expanded in every word, and a relative program
 * path (`.venv/bin/codenook`) taken relative to the workspace folder.
 */
export function parseServerCommand(value: unknown, ctx: ResolveContext = {}): ServerCommand {
  let words: string[];
  if (value === undefined || value === null || value === '') {
    words = splitCommandLine(DEFAULT_SERVER_COMMAND);
  } else if (typeof value === 'string') {
    words = splitCommandLine(value);
  } else if (Array.isArray(value) && value.every((w) => typeof w === 'string')) {
    words = [...(value as string[])];
  } else {
    throw new CommandLineError('codenook.serverCommand must be a string or an array of strings');
  }
  if (words.length === 0 || words[0].trim() === '') {
    throw new CommandLineError('codenook.serverCommand is empty');
  }
  const expanded = words.map((w) => expandWord(w, ctx));
  let command = expanded[0];
  if (isRelativePath(command) && ctx.workspaceFolder) {
    command = path.join(ctx.workspaceFolder, command);
  }
  return { command, args: expanded.slice(1) };
}

function expandWord(word: string, ctx: ResolveContext): string {
  let out = word;
  if (ctx.workspaceFolder !== undefined) {
    out = out.split('${workspaceFolder}').join(ctx.workspaceFolder);
  }
  if (ctx.home !== undefined) {
    out = out.split('${userHome}').join(ctx.home);
    if (out === '~') {
      out = ctx.home;
    } else if (out.startsWith('~/')) {
      out = path.join(ctx.home, out.slice(2));
    }
  }
  return out;
}

/** `./x`, `../x`, `dir/x`: a path with a slash that is not absolute. A bare name is not. */
function isRelativePath(command: string): boolean {
  return !path.isAbsolute(command) && command.includes('/');
}

/** A one-line shell-like rendering for messages (`/p/codenook serve`). */
export function formatCommand(cmd: ServerCommand): string {
  return [cmd.command, ...cmd.args]
    .map((w) => (/^[\w@%+=:,./~-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/**
 * Where the program would be found: its own path when it contains a slash, otherwise the
 * first executable file of that name on PATH. Undefined when there is none, which is what
 * turns "spawn codenook ENOENT" into a message that says what to set.
 */
export function findExecutable(
  command: string,
  envPath: string | undefined,
  isExecutable: (file: string) => boolean = defaultIsExecutable,
): string | undefined {
  if (command.includes('/')) {
    return isExecutable(command) ? command : undefined;
  }
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = path.join(dir, command);
    if (isExecutable(candidate)) {
      return candidate;
    }
  }
  return undefined;
}

function defaultIsExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * With the default `codenook serve` and no `codenook` on PATH, the codenook checkout that built
 * this .vsix (scripts/install.sh) is the next place to look: its `.venv/bin/codenook`. Returns
 * that command when it can run, else undefined.
 */
export function checkoutFallback(
  value: unknown,
  checkout: string | undefined,
  isExecutable: (file: string) => boolean = defaultIsExecutable,
): ServerCommand | undefined {
  const isDefault = value === undefined || value === null || value === '' || value === DEFAULT_SERVER_COMMAND;
  if (!isDefault || !checkout) {
    return undefined;
  }
  const program = path.join(checkout, '.venv', 'bin', 'codenook');
  return isExecutable(program) ? { command: program, args: ['serve'] } : undefined;
}

/**
 * The command that lists the server's languages without starting it: `serverCommand` with
 * `languages --json` in place of `serve` and what follows it (`codenook serve --set k=v` →
 * `codenook languages --json`, `python -m codenook serve` → `python -m codenook languages
 * --json`). Undefined when there is no `serve` word to replace (a wrapper script): then the
 * server's languages can only be learnt by starting it.
 */
export function languagesCommand(cmd: ServerCommand): ServerCommand | undefined {
  const i = cmd.args.indexOf('serve');
  if (i < 0) {
    return undefined;
  }
  return { command: cmd.command, args: [...cmd.args.slice(0, i), 'languages', '--json'] };
}

/**
 * The folder of `folders` that holds `file` (after resolving symbolic links, so a link in the
 * workspace to a program elsewhere is not inside, and a link elsewhere into the workspace is),
 * or undefined. In an untrusted workspace the server program must not come from there.
 */
export function folderHolding(file: string, folders: readonly string[]): string | undefined {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const target = real(file);
  for (const folder of folders) {
    const rel = path.relative(real(folder), target);
    if (rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))) {
      return folder;
    }
  }
  return undefined;
}
