#!/usr/bin/env bash
# The VS Code extension's own checks, no editor needed (Node >= 20 and npm):
#   npm ci → tsc --noEmit → bundle + package the .vsix → node --test (fake `vscode` module).
# The tests run last so that their summary closes the output.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"   # clients/vscode
cd "$HERE"
T0=$(date +%s)
phase() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }

phase "npm ci"
npm ci --no-audit --no-fund
sha256sum package-lock.json | cut -c1-16 >node_modules/.codenook-lock   # lets test-e2e.sh skip its npm ci

phase "tsc --noEmit (TypeScript $(npx --no-install tsc --version | sed 's/Version //'))"
npx --no-install tsc --noEmit -p .

phase "bundle + package (esbuild, vsce)"
npm run --silent package
python3 - build/codenook.vsix <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"extension/package.json", "extension/dist/extension.js", "extension/readme.md"}
missing = need - names
extra = [n for n in names if "node_modules/" in n or n.startswith("extension/src/") or n.startswith("extension/test")]
if missing or extra:
    sys.exit(f"bad .vsix: missing {sorted(missing)}, unexpected {sorted(extra)[:5]}")
print(f"{sys.argv[1]}: {len(names)} files, contents ok")
EOF

phase "node --test"
node scripts/build.mjs --tests
node --test out/test/
