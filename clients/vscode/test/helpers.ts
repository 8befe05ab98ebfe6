// Shared by the tests: where the extension's folder is, and its package.json.
import { readFileSync } from 'node:fs';
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
