#!/usr/bin/env bash
# Build clients/vscode/build/codenook.vsix and install it into VS Code in one step.
#   clients/vscode/scripts/install.sh                 # into `code`
#   CODE=codium clients/vscode/scripts/install.sh     # or code-insiders, code-server, ...
# Extra arguments go to the editor's CLI (e.g. --profile NAME). Needs Node >= 20 and npm.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CODE="${CODE:-code}"
command -v "$CODE" >/dev/null || { echo "install.sh: '$CODE' not found; set CODE to your editor's command line tool" >&2; exit 1; }
cd "$HERE"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent package
"$CODE" "$@" --install-extension "$HERE/build/codenook.vsix" --force
cat <<MSG

Installed codenook for VS Code. If codenook is not on the editor's PATH, add to settings.json:
  "codenook.serverCommand": ["$REPO/.venv/bin/codenook", "serve"]
MSG
