"""Typed, validated settings.

Editors send settings as nested objects (``{"model": {"path": ...}}``), as dotted keys
(``{"model.path": ...}``) or wrapped in a ``codenook`` section; all three are accepted. Every
key is declared once, as a field of a section dataclass with its default, bounds, a one-line
description and whether changing it reloads the model; ``SPECS`` is derived from those fields
and is what ``codenook settings`` prints and what docs/settings.md must list (a test
checks). A bad value never stops the server: it is reported and replaced by the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _setting(
    default: Any,
    description: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    optional: bool = False,
    reloads_model: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """One row of the settings table: a dataclass field whose metadata documents it."""
    meta = {
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        "optional": optional,
        "reloads_model": reloads_model,
        "choices": choices,
    }
    return field(default=default, metadata=meta)


# The settings table. Attribute names are the keys' last part, camelCase as editors spell
# them, so ``settings.model.contextSize`` is the key ``model.contextSize``.


@dataclass(frozen=True)
class ModelSettings:
    path: str | None = _setting(
        None,
        "GGUF file to load. Unset: the embedded SmolLM2-135M default (for trying codenook out).",
        optional=True,
        reloads_model=True,
    )
    contextSize: int = _setting(
        4096, "Context window in tokens.", minimum=256, maximum=262144, reloads_model=True
    )
    threads: int = _setting(
        0,
        "CPU threads for decoding; 0 leaves one core free on machines with up to 4 cores, else"
        " uses half of them (at least 4).",
        minimum=0,
        maximum=1024,
        reloads_model=True,
    )
    gpuLayers: int = _setting(
        0,
        "Layers to offload to a GPU when llama.cpp was built with one; -1 offloads all.",
        minimum=-1,
        maximum=10000,
        reloads_model=True,
    )
    batchSize: int = _setting(
        512, "Prompt tokens decoded per batch.", minimum=8, maximum=8192, reloads_model=True
    )


@dataclass(frozen=True)
class EngineSettings:
    prefixCache: bool = _setting(
        True,
        "Reuse the previous prompt's computed state (off only to measure what it saves).",
        reloads_model=True,
    )
    checkpointMemoryMiB: int = _setting(
        1024,
        "Memory for recurrent-state checkpoints of hybrid models (~75 MiB each for"
        " Qwen3-Coder-Next).",
        minimum=0,
        maximum=1 << 20,
        reloads_model=True,
    )
    mode: str = _setting(
        "auto",
        "Where the model runs: auto (attach to this user's shared engine host, starting it when"
        " none runs), shared (the same, never in-process), inprocess (a model of this window's"
        " own). CODENOOK_ENGINE_MODE overrides it.",
        reloads_model=True,
        choices=("auto", "shared", "inprocess"),
    )
    idleExitS: int = _setting(
        600,
        "A shared engine host started by a window exits after this many seconds without"
        " windows or API requests.",
        minimum=0,
        maximum=7 * 24 * 3600,
    )
    windows: int = _setting(
        4,
        "Editor windows of a shared engine host that keep a prompt cache lane of their own"
        " (more windows share them).",
        minimum=1,
        maximum=16,
        reloads_model=True,
    )
    backend: str = _setting(
        "llama",
        "llama: the model runs in codenook (in-process or the shared engine host); openai: on"
        " an OpenAI-compatible server at engine.url (vLLM, SGLang, llama-server, Ollama).",
        reloads_model=True,
        choices=("llama", "openai"),
    )
    url: str | None = _setting(
        None,
        "The OpenAI-compatible server's base URL (engine.backend openai), e.g."
        " http://gpu-box:8000/v1.",
        optional=True,
        reloads_model=True,
    )
    model: str | None = _setting(
        None,
        "The model name the server serves; unset: the first one its /v1/models lists.",
        optional=True,
        reloads_model=True,
    )
    apiKeyEnv: str | None = _setting(
        None,
        "Name of the environment variable that holds the server's API key (keys never live in"
        " settings files); unset: no key is sent.",
        optional=True,
        reloads_model=True,
    )
    timeoutS: int = _setting(
        30,
        "Seconds to wait for the server to connect, to start answering and between two pieces"
        " of a streamed answer.",
        minimum=1,
        maximum=3600,
        reloads_model=True,
    )
    caFile: str | None = _setting(
        None,
        "A CA bundle (PEM) to verify an https engine.url against, for a team server with its"
        " own certificate authority; TLS is always verified.",
        optional=True,
        reloads_model=True,
    )
    promptFormat: str = _setting(
        "auto",
        "How the server's model spells its FIM markers: auto (ask the server's tokenize"
        " endpoint), qwen (Qwen2.5/Qwen3-Coder markers), none (no FIM: prefix-only prompts).",
        reloads_model=True,
        choices=("auto", "qwen", "none"),
    )


@dataclass(frozen=True)
class CompletionSettings:
    enabled: bool = _setting(True, "Answer textDocument/inlineCompletion.")
    speculative: bool = _setting(
        True,
        "After showing a suggestion, compute the next one as if it were accepted (idle time).",
    )
    maxTokens: int = _setting(64, "Most tokens generated per suggestion.", minimum=1, maximum=2048)
    maxLines: int = _setting(8, "Most lines in a multi-line suggestion.", minimum=1, maximum=200)
    timeBudgetMs: int = _setting(
        5000,
        "Generation stops after this long and the suggestion keeps its complete lines.",
        minimum=50,
        maximum=600000,
    )
    alternatives: int = _setting(
        3,
        "Most suggestions in the list a client asks for explicitly (VS Code's next/previous"
        " inline suggestion, the Neovim cycle keys); 1: the greedy one only.",
        minimum=1,
        maximum=8,
        reloads_model=True,
    )


@dataclass(frozen=True)
class HoverSettings:
    enabled: bool = _setting(True, "Explain functions and classes on hover.")
    timeBudgetMs: int = _setting(
        2500,
        "Longest a hover waits for its explanation; after that it shows the signature alone"
        " and the explanation is ready for the next hover.",
        minimum=0,
        maximum=600000,
    )
    maxTokens: int = _setting(96, "Most tokens in a hover explanation.", minimum=8, maximum=2048)


@dataclass(frozen=True)
class ActionsSettings:
    enabled: bool = _setting(True, "Offer model-backed refactors and fixes.")
    maxTokens: int = _setting(
        768, "Most tokens a refactor or fix may generate.", minimum=16, maximum=32768
    )


@dataclass(frozen=True)
class ContextSettings:
    prefixTokens: int = _setting(
        1024,
        "Model tokens of code before the cursor in the prompt.",
        minimum=16,
        maximum=131072,
    )
    suffixTokens: int = _setting(
        256,
        "Model tokens of code after the cursor (FIM models only).",
        minimum=0,
        maximum=65536,
    )
    headerTokens: int = _setting(
        256,
        "Model tokens for the import block and enclosing scope headers above the prefix window.",
        minimum=0,
        maximum=65536,
    )
    crossFileTokens: int = _setting(
        1024,
        "Model tokens for definitions, recent edits and visited code from other files of the"
        " workspace, in front of the current file (0: none).",
        minimum=0,
        maximum=131072,
    )


@dataclass(frozen=True)
class IndexSettings:
    enabled: bool = _setting(
        True, "Index the workspace's source files in the background for cross-file context."
    )
    maxFileBytes: int = _setting(
        1024 * 1024,
        "Source files larger than this are left out of the workspace index.",
        minimum=1024,
        maximum=1 << 31,
    )
    maxFiles: int = _setting(
        20_000,
        "The index of a workspace folder stops adding files at this many (a bound on memory).",
        minimum=1,
        maximum=10_000_000,
    )
    maxDefinitions: int = _setting(
        300_000,
        "The index of a workspace folder stops adding files at this many definitions"
        " (about 1 KB of memory each).",
        minimum=1,
        maximum=100_000_000,
    )
    exclude: tuple[str, ...] = _setting(
        (),
        "More files and folders left out of the workspace index: gitignore-style patterns"
        ' relative to the folder ("generated/**", "*.gen.ts", "!keep.py"), on top of its'
        " .gitignore files.",
    )


@dataclass(frozen=True)
class DocumentsSettings:
    maxFileBytes: int = _setting(
        2 * 1024 * 1024,
        "Files larger than this (or containing NUL bytes) are not parsed or completed.",
        minimum=1024,
        maximum=1 << 31,
    )


@dataclass(frozen=True)
class TraceSettings:
    prompts: bool = _setting(
        False, "Log every completion prompt and its timings with window/logMessage."
    )


@dataclass(frozen=True)
class AgentSettings:
    enabled: bool = _setting(
        True,
        "Offer agent tasks (codenook.agentTask); clients refuse them in untrusted folders.",
    )
    edits: str = _setting(
        "apply",
        "How agent edits reach the buffers: 'apply' at once (unsaved, undoable), or 'confirm'"
        " each one first.",
        choices=("apply", "confirm"),
    )
    allowCommands: tuple[str, ...] = _setting(
        (),
        "Commands the agent may run without asking: an entry allows itself and itself followed"
        ' by arguments ("pytest" allows "pytest -x"); commands with shell operators always ask.',
    )
    maxSteps: int = _setting(25, "Most model replies per task.", minimum=1, maximum=1000)
    maxTokens: int = _setting(
        16384,
        "Most tokens the model generates per task, all steps together.",
        minimum=64,
        maximum=10_000_000,
    )
    stepTokens: int = _setting(
        1024, "Most tokens the model generates per step.", minimum=16, maximum=32768
    )
    timeBudgetS: int = _setting(
        900, "Wall-clock limit of a task in seconds.", minimum=5, maximum=86400
    )
    commandTimeoutS: int = _setting(
        120,
        "A command the agent runs is killed after this many seconds.",
        minimum=1,
        maximum=86400,
    )
    outputChars: int = _setting(
        8000,
        "Most characters of one tool result (file text, search matches, command output) shown"
        " to the model.",
        minimum=500,
        maximum=1_000_000,
    )
    readSecrets: bool = _setting(
        False,
        "Let the agent read and edit key and secret files (.env, *.pem, id_*, agent.secretFiles).",
    )
    secretFiles: tuple[str, ...] = _setting(
        (),
        "More file-name globs the agent treats as secrets (never read unless agent.readSecrets;"
        " nor edited unless agent.readSecrets).",
    )


@dataclass(frozen=True)
class Settings:
    """Resolved settings: typed sections (``settings.model.path``) that never hold a bad value."""

    model: ModelSettings = field(default_factory=ModelSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    hover: HoverSettings = field(default_factory=HoverSettings)
    actions: ActionsSettings = field(default_factory=ActionsSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    documents: DocumentsSettings = field(default_factory=DocumentsSettings)
    trace: TraceSettings = field(default_factory=TraceSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Settings:
        """Build from dotted keys; keys not given keep their defaults."""
        sections: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            section, _, name = key.partition(".")
            sections.setdefault(section, {})[name] = value
        built = {f.name: _SECTION_TYPES[f.name](**sections.get(f.name, {})) for f in fields(cls)}
        return cls(**built)

    @property
    def values(self) -> dict[str, Any]:
        """Every key with its value, dotted: for tables, JSON and comparisons."""
        return {spec.key: self[spec.key] for spec in SPECS}

    def __getitem__(self, key: str) -> Any:
        section, _, name = key.partition(".")
        if key not in _BY_KEY:
            raise KeyError(key)
        return getattr(getattr(self, section), name)

    def with_values(self, **changes: Any) -> Settings:
        merged = self.values
        for name, value in changes.items():
            merged[name.replace("__", ".")] = value
        return Settings.from_values(merged)

    def reload_keys(self, new: Settings) -> list[str]:
        """The keys whose change needs the model loaded again."""
        return [s.key for s in SPECS if s.reloads_model and self[s.key] != new[s.key]]


@dataclass(frozen=True)
class SettingSpec:
    key: str
    kind: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    reloads_model: bool = False
    choices: tuple[str, ...] = ()


_SECTION_TYPES: dict[str, Any] = {f.name: f.default_factory for f in fields(Settings)}


def _specs() -> tuple[SettingSpec, ...]:
    specs = []
    for section in fields(Settings):
        for f in fields(_SECTION_TYPES[section.name]):
            kind = str if f.metadata["optional"] else type(f.default)
            specs.append(SettingSpec(f"{section.name}.{f.name}", kind, f.default, **f.metadata))
    return tuple(specs)


SPECS: tuple[SettingSpec, ...] = _specs()
_BY_KEY = {spec.key: spec for spec in SPECS}


class SettingProblem(str):
    """A problem's message (a plain string to print) that also names the setting it is about,
    so the LSP layer can point the user at it without reading the wording."""

    key: str | None

    def __new__(cls, message: str, key: str | None = None) -> SettingProblem:
        problem = super().__new__(cls, message)
        problem.key = key
        return problem


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted not in _BY_KEY:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(spec: SettingSpec, value: Any) -> Any:
    if value is None:
        if spec.optional:
            return None
        raise ValueError("must not be null")
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        number = int(value)
        if spec.minimum is not None and number < spec.minimum:
            raise ValueError(f"{number} is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and number > spec.maximum:
            raise ValueError(f"{number} is above the maximum {spec.maximum:g}")
        return number
    if spec.kind is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if spec.optional and not value.strip():
            return None
        if spec.choices and value not in spec.choices:
            raise ValueError(f"expected one of {', '.join(spec.choices)}, got {value!r}")
        return value
    if spec.kind is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return tuple(v for v in value if v.strip())
    raise AssertionError(spec.kind)  # pragma: no cover - SPECS only use the kinds above


def parse_settings(
    raw: Mapping[str, Any] | None, base: Settings | None = None
) -> tuple[Settings, list[str]]:
    """Overlay ``raw`` on ``base`` (defaults when None); return the result and the problems.

    Keys that are absent keep the base value, so a client that sends only what changed does
    not reset the rest.
    """
    values = (base or Settings()).values
    problems: list[str] = []
    if raw is None:
        return Settings.from_values(values), problems
    if not isinstance(raw, Mapping):
        return Settings.from_values(values), [
            f"settings must be an object, got {type(raw).__name__}"
        ]
    if isinstance(raw.get("codenook"), Mapping):
        raw = raw["codenook"]
    for key, value in _flatten(raw).items():
        spec = _BY_KEY.get(key)
        if spec is None:
            problems.append(SettingProblem(f"unknown setting '{key}' ignored", key))
            continue
        try:
            values[key] = _coerce(spec, value)
        except ValueError as exc:
            values[key] = spec.default
            default = "unset" if spec.default is None else repr(spec.default)
            text = f"setting '{key}': {exc}; using the default ({default})"
            problems.append(SettingProblem(text, key))
    return Settings.from_values(values), problems


def describe() -> str:
    """A plain-text table of every setting, for ``codenook settings``."""
    rows = []
    for spec in SPECS:
        default = "unset" if spec.default is None else repr(spec.default)
        kind = "list" if spec.kind is tuple else spec.kind.__name__
        rows.append(f"{spec.key:<24} {kind:<5} {default:<10} {spec.description}")
    return "\n".join(rows)
