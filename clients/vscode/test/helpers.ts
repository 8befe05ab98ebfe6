// Shared by the tests: where the extension's folder is, and its package.json.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** clients/vscode, from the bundled test file in clients/vscode/out/test/. */
export const extensionRoot = join(__dirname, '..', '..');
export const repoRoot = join(extensionRoot, '..', '..');

export interface ContributedSetting {
  type: string | string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  markdownDescription?: string;
  description?: string;
}

export interface PackageJson {
  main: string;
  engines: { vscode: string };
  activationEvents: string[];
  capabilities: {
    untrustedWorkspaces: { supported: boolean | 'limited'; description?: string; restrictedConfigurations?: string[] };
    virtualWorkspaces?: boolean;
  };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  contributes: {
    configuration: { properties: Record<string, ContributedSetting> };
    commands: { command: string; title: string }[];
    keybindings: { command: string; key: string; when?: string }[];
  };
}

export const packageJson: PackageJson = JSON.parse(readFileSync(join(extensionRoot, 'package.json'), 'utf8'));

/** The contributed defaults, as `getConfiguration('codenook').get(key)` returns them. */
export function contributedDefaults(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, spec] of Object.entries(packageJson.contributes.configuration.properties)) {
    out.set(key.slice('codenook.'.length), structuredClone(spec.default));
  }
  return out;
}

/** The repository's server, when `make install` has made it. */
export const codenookBin = join(repoRoot, '.venv', 'bin', 'codenook');

/**
 * The languages the repository's server supports (`codenook languages --json`: the same list
 * its initialize result advertises), or undefined without `.venv`. Tests use the real list
 * rather than a copy, so a language added to the server is covered without touching them.
 */
export function serverLanguages(): { name: string; languageIds: string[]; extensions: string[] }[] | undefined {
  if (!existsSync(codenookBin)) {
    return undefined;
  }
  return JSON.parse(execFileSync(codenookBin, ['languages', '--json'], { encoding: 'utf8' }));
}

/** VS Code's matching of one document against a selector, for the filters used here. */
export function selects(
  selector: { scheme: string; language?: string; pattern?: string }[],
  doc: { scheme: string; languageId: string; path: string },
): boolean {
  return selector.some((f) => {
    if (f.scheme !== doc.scheme || (f.language !== undefined && f.language !== doc.languageId)) {
      return false;
    }
    if (f.pattern === undefined) {
      return true;
    }
    const m = /^\*\*\/\*\.(?:\{(.*)\}|(.*))$/.exec(f.pattern);
    if (!m) {
      throw new Error(`unexpected pattern ${f.pattern}`);
    }
    const exts = (m[1] ?? m[2]).split(',');
    return exts.some((e) => doc.path.endsWith(`.${e}`));
  });
}


/**
 * A stand-in for `codenook` in a new temporary folder, for the extension's start-up: its
 * `languages --json` prints $CODENOOK_FAKE_LANGUAGES (or fails with exit 2, like a codenook
 * without the subcommand, when that is `fail`), and every call appends its arguments to
 * $CODENOOK_FAKE_LOG. The fake language client never runs `serve`.
 */
export function fakeCodenook(): { program: string; dir: string; log: string; calls(): string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'codenook-fake-'));
  const program = join(dir, 'codenook');
  const log = join(dir, 'calls.log');
  writeFileSync(
    program,
    [
      '#!/bin/sh',
      'echo "$*" >> "${CODENOOK_FAKE_LOG:-/dev/null}"',
      'if [ "$1" = languages ]; then',
      '  if [ "$CODENOOK_FAKE_LANGUAGES" = fail ]; then',
      '    echo "codenook: error: argument command: invalid choice: \'languages\'" >&2; exit 2',
      '  fi',
      '  printf "%s\\n" "$CODENOOK_FAKE_LANGUAGES"; exit 0',
      'fi',
      'exit 3',
      '',
    ].join('\n'),
  );
  chmodSync(program, 0o755);
  return {
    program,
    dir,
    log,
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : []),
  };
}
