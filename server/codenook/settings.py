"""Typed, validated settings.

Editors send settings as nested objects (``{"model": {"path": ...}}``), as dotted keys
(``{"model.path": ...}``) or wrapped in a ``codenook`` section; all three are accepted. Every
key is declared once in ``SPECS`` with its type, default, bounds and a one-line description,
which is also what ``codenook settings`` prints and what docs/settings.md must list (a test
checks). A bad value never stops the server: it is reported and replaced by the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class SettingSpec:
    key: str
    kind: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "model.path",
        str,
        None,
        "GGUF file to load. Unset: the embedded SmolLM2-135M default (for trying codenook out).",
        optional=True,
    ),
    SettingSpec("model.contextSize", int, 4096, "Context window in tokens.", 256, 262144),
    SettingSpec(
        "model.threads",
        int,
        0,
        "CPU threads for decoding; 0 leaves one core free on machines with up to 4 cores, else"
        " uses half of them (at least 4).",
        0,
        1024,
    ),
    SettingSpec(
        "model.gpuLayers",
        int,
        0,
        "Layers to offload to a GPU when llama.cpp was built with one; -1 offloads all.",
        -1,
        10000,
    ),
    SettingSpec("model.batchSize", int, 512, "Prompt tokens decoded per batch.", 8, 8192),
    SettingSpec(
        "engine.prefixCache",
        bool,
        True,
        "Reuse the previous prompt's computed state (off only to measure what it saves).",
    ),
    SettingSpec(
        "engine.checkpointMemoryMiB",
        int,
        1024,
        "Memory for recurrent-state checkpoints of hybrid models (~75 MiB each for"
        " Qwen3-Coder-Next).",
        0,
        1 << 20,
    ),
    SettingSpec("completion.enabled", bool, True, "Answer textDocument/inlineCompletion."),
    SettingSpec(
        "completion.speculative",
        bool,
        True,
        "After showing a suggestion, compute the next one as if it were accepted (idle time).",
    ),
    SettingSpec("completion.maxTokens", int, 64, "Most tokens generated per suggestion.", 1, 2048),
    SettingSpec("completion.maxLines", int, 8, "Most lines in a multi-line suggestion.", 1, 200),
    SettingSpec(
        "completion.timeBudgetMs",
        int,
        5000,
        "Generation stops after this long and the suggestion keeps its complete lines.",
        50,
        600000,
    ),
    SettingSpec("hover.enabled", bool, True, "Explain functions and classes on hover."),
    SettingSpec(
        "hover.timeBudgetMs",
        int,
        2500,
        "Longest a hover waits for its explanation; after that it shows the signature alone"
        " and the explanation is ready for the next hover.",
        0,
        600000,
    ),
    SettingSpec("hover.maxTokens", int, 96, "Most tokens in a hover explanation.", 8, 2048),
    SettingSpec("actions.enabled", bool, True, "Offer model-backed refactors and fixes."),
    SettingSpec(
        "actions.maxTokens", int, 768, "Most tokens a refactor or fix may generate.", 16, 32768
    ),
    SettingSpec(
        "context.prefixTokens",
        int,
        1024,
        "Model tokens of code before the cursor in the prompt.",
        16,
        131072,
    ),
    SettingSpec(
        "context.suffixTokens",
        int,
        256,
        "Model tokens of code after the cursor (FIM models only).",
        0,
        65536,
    ),
    SettingSpec(
        "context.headerTokens",
        int,
        256,
        "Model tokens for the import block and enclosing scope headers above the prefix window.",
        0,
        65536,
    ),
    SettingSpec(
        "context.crossFileTokens",
        int,
        1024,
        "Model tokens for definitions, recent edits and visited code from other files of the"
        " workspace, in front of the current file (0: none).",
        0,
        131072,
    ),
    SettingSpec(
        "index.enabled",
        bool,
        True,
        "Index the workspace's source files in the background for cross-file context.",
    ),
    SettingSpec(
        "index.maxFileBytes",
        int,
        1024 * 1024,
        "Source files larger than this are left out of the workspace index.",
        1024,
        1 << 31,
    ),
    SettingSpec(
        "documents.maxFileBytes",
        int,
        2 * 1024 * 1024,
        "Files larger than this (or containing NUL bytes) are not parsed or completed.",
        1024,
        1 << 31,
    ),
    SettingSpec(
        "trace.prompts",
        bool,
        False,
        "Log every completion prompt and its timings with window/logMessage.",
    ),
)

_BY_KEY = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings, addressed by their dotted key (``settings["model.path"]``)."""

    values: Mapping[str, Any] = field(default_factory=lambda: {s.key: s.default for s in SPECS})

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def with_values(self, **changes: Any) -> Settings:
        merged = dict(self.values)
        for name, value in changes.items():
            merged[name.replace("__", ".")] = value
        return replace(self, values=merged)


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
        return value
    raise AssertionError(spec.kind)  # pragma: no cover - SPECS only use the kinds above


def parse_settings(
    raw: Mapping[str, Any] | None, base: Settings | None = None
) -> tuple[Settings, list[str]]:
    """Overlay ``raw`` on ``base`` (defaults when None); return the result and the problems.

    Keys that are absent keep the base value, so a client that sends only what changed does
    not reset the rest.
    """
    values = dict((base or Settings()).values)
    problems: list[str] = []
    if raw is None:
        return Settings(values), problems
    if not isinstance(raw, Mapping):
        return Settings(values), [f"settings must be an object, got {type(raw).__name__}"]
    if isinstance(raw.get("codenook"), Mapping):
        raw = raw["codenook"]
    for key, value in _flatten(raw).items():
        spec = _BY_KEY.get(key)
        if spec is None:
            problems.append(f"unknown setting '{key}' ignored")
            continue
        try:
            values[key] = _coerce(spec, value)
        except ValueError as exc:
            values[key] = spec.default
            default = "unset" if spec.default is None else repr(spec.default)
            problems.append(f"setting '{key}': {exc}; using the default ({default})")
    return Settings(values), problems


def describe() -> str:
    """A plain-text table of every setting, for ``codenook settings``."""
    rows = []
    for spec in SPECS:
        default = "unset" if spec.default is None else repr(spec.default)
        rows.append(f"{spec.key:<24} {spec.kind.__name__:<5} {default:<10} {spec.description}")
    return "\n".join(rows)
