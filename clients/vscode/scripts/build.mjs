// Bundles the extension with esbuild: dist/extension.js (vscode-languageclient inside, `vscode`
// external). With --tests, also bundles test/*.test.ts into out/test/, with `vscode` and
// `vscode-languageclient/node` replaced by the fakes in test/fake/.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tests = process.argv.includes('--tests');

// The checkout this bundle is built in: with the default `codenook serve` and no `codenook` on
// PATH, the extension tries <checkout>/.venv/bin/codenook (see checkoutFallback).
const checkout = join(root, '..', '..');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  absWorkingDir: root,
};

if (tests) {
  rmSync(join(root, 'out'), { recursive: true, force: true });
  const entryPoints = readdirSync(join(root, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join('test', f));
  await build({
    ...common,
    entryPoints,
    outdir: 'out/test',
    sourcemap: 'inline',
    alias: {
      vscode: './test/fake/vscode.ts',
      'vscode-languageclient/node': './test/fake/languageclient.ts',
    },
  });
} else {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    external: ['vscode'],
    define: { CODENOOK_CHECKOUT: JSON.stringify(checkout) },
    minify: true,
    sourcemap: false,
  });
}
