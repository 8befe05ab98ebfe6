"""Settings: every input shape editors send, validation, and the documentation of every key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codenook.settings import SPECS, Settings, describe, parse_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
DEFAULTS = {spec.key: spec.default for spec in SPECS}


def test_defaults() -> None:
    resolved, problems = parse_settings(None)
    assert problems == []
    assert dict(resolved.values) == DEFAULTS
    assert resolved["model.contextSize"] == 4096
    assert resolved["model.path"] is None
    assert dict(parse_settings({})[0].values) == DEFAULTS


def test_nested_input() -> None:
    resolved, problems = parse_settings(
        {"model": {"path": "/m/x.gguf", "contextSize": 8192}, "completion": {"maxLines": 3}}
    )
    assert problems == []
    assert resolved["model.path"] == "/m/x.gguf"
    assert resolved["model.contextSize"] == 8192
    assert resolved["completion.maxLines"] == 3
    assert resolved["completion.maxTokens"] == DEFAULTS["completion.maxTokens"]


def test_dotted_input() -> None:
    resolved, problems = parse_settings({"model.gpuLayers": -1, "trace.prompts": True})
    assert problems == []
    assert resolved["model.gpuLayers"] == -1
    assert resolved["trace.prompts"] is True


def test_mixed_nested_and_dotted_input() -> None:
    resolved, problems = parse_settings({"model": {"threads": 4}, "context.prefixTokens": 512})
    assert problems == []
    assert resolved["model.threads"] == 4
    assert resolved["context.prefixTokens"] == 512


def test_codenook_section_is_unwrapped() -> None:
    resolved, problems = parse_settings(
        {"codenook": {"model": {"batchSize": 256}, "completion.enabled": False}}
    )
    assert problems == []
    assert resolved["model.batchSize"] == 256
    assert resolved["completion.enabled"] is False


def test_unknown_keys_are_reported_and_ignored() -> None:
    resolved, problems = parse_settings({"model": {"pth": "x"}, "bogus": 1, "model.threads": 2})
    assert resolved["model.threads"] == 2
    assert "model.pth" not in resolved.values and "bogus" not in resolved.values
    assert len(problems) == 2
    assert any("model.pth" in p and "unknown" in p for p in problems)
    assert any("'bogus'" in p and "unknown" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model.contextSize", "4096"),  # a string for an integer
        ("model.contextSize", 4096.5),  # not a whole number
        ("model.contextSize", True),  # bool is not an integer here
        ("model.contextSize", None),
        ("model.contextSize", 100),  # below the minimum 256
        ("model.contextSize", 10**9),  # above the maximum
        ("model.gpuLayers", -2),
        ("completion.maxLines", 0),
        ("completion.enabled", "yes"),
        ("completion.enabled", 1),
        ("trace.prompts", None),
        ("model.path", 42),
        ("model.path", {"nested": "x"}),
    ],
)
def test_bad_values_are_reported_and_replaced_by_the_default(key: str, value: object) -> None:
    base, _ = parse_settings({"model.contextSize": 8192, "completion.enabled": False})
    resolved, problems = parse_settings({key: value}, base)
    assert len(problems) == 1
    assert key in problems[0]
    assert "default" in problems[0]
    assert resolved[key] == DEFAULTS[key]


def test_problem_messages_name_the_bound() -> None:
    _, problems = parse_settings({"completion.maxTokens": 5000})
    assert problems and "maximum" in problems[0] and "2048" in problems[0]
    _, problems = parse_settings({"model.batchSize": 1})
    assert problems and "minimum" in problems[0] and "8" in problems[0]


def test_whole_floats_count_as_integers() -> None:
    resolved, problems = parse_settings({"model.contextSize": 2048.0})
    assert problems == []
    assert resolved["model.contextSize"] == 2048
    assert type(resolved["model.contextSize"]) is int


def test_bounds_are_inclusive() -> None:
    resolved, problems = parse_settings({"model.gpuLayers": -1, "completion.maxTokens": 2048})
    assert problems == []
    assert resolved["model.gpuLayers"] == -1
    assert resolved["completion.maxTokens"] == 2048


def test_optional_string_blank_or_null_means_unset() -> None:
    base, _ = parse_settings({"model.path": "/m/x.gguf"})
    for value in ("", "   ", None):
        resolved, problems = parse_settings({"model.path": value}, base)
        assert problems == []
        assert resolved["model.path"] is None


def test_absent_keys_keep_the_base() -> None:
    base, _ = parse_settings({"model.path": "/m/x.gguf", "completion.maxLines": 2})
    resolved, problems = parse_settings({"completion": {"maxTokens": 10}}, base)
    assert problems == []
    assert resolved["model.path"] == "/m/x.gguf"
    assert resolved["completion.maxLines"] == 2
    assert resolved["completion.maxTokens"] == 10
    # The base is not modified.
    assert base["completion.maxTokens"] == DEFAULTS["completion.maxTokens"]
    # None and non-object input keep the base too.
    assert dict(parse_settings(None, base)[0].values) == dict(base.values)
    kept, problems = parse_settings(["not", "an", "object"], base)  # type: ignore[arg-type]
    assert dict(kept.values) == dict(base.values)
    assert len(problems) == 1 and "object" in problems[0]


def test_with_values() -> None:
    changed = Settings().with_values(completion__maxLines=4, **{"model.path": "/x"})
    assert changed["completion.maxLines"] == 4
    assert changed["model.path"] == "/x"
    assert Settings()["completion.maxLines"] == DEFAULTS["completion.maxLines"]


def test_specs_are_consistent() -> None:
    keys = [spec.key for spec in SPECS]
    assert len(keys) == len(set(keys))
    for spec in SPECS:
        assert re.fullmatch(r"[a-z]+\.[a-zA-Z]+", spec.key), spec.key
        assert spec.description.strip()
        if spec.default is not None:
            assert isinstance(spec.default, spec.kind), spec.key
            # Each default must itself pass validation.
            _, problems = parse_settings({spec.key: spec.default})
            assert problems == [], spec.key
        else:
            assert spec.optional, spec.key


def test_describe_lists_every_key() -> None:
    table = describe()
    for spec in SPECS:
        assert spec.key in table


# --- documentation -----------------------------------------------------------------------------


def _undocumented(text: str) -> list[str]:
    """Keys of SPECS that do not appear as whole words in ``text``."""
    return [
        spec.key
        for spec in SPECS
        if not re.search(rf"(?<![\w.]){re.escape(spec.key)}(?![\w])", text)
    ]


def test_undocumented_finds_a_missing_key() -> None:
    every = "\n".join(f"| `{spec.key}` | ... |" for spec in SPECS)
    assert _undocumented(every) == []
    without = every.replace("`model.threads`", "`model.threadsX`")
    assert _undocumented(without) == ["model.threads"]
    assert _undocumented("") == [spec.key for spec in SPECS]


def test_every_setting_is_documented() -> None:
    assert DOCS.is_file(), f"{DOCS} is missing: it must document every key of settings.SPECS"
    missing = _undocumented(DOCS.read_text(encoding="utf-8"))
    assert missing == [], f"docs/settings.md does not mention: {', '.join(missing)}"


def test_problems_name_their_setting() -> None:
    """The LSP layer offers the setting to open from this, never from the wording."""
    _, problems = parse_settings({"model": {"threads": "four"}, "bogus": 1})
    assert sorted(getattr(p, "key", None) for p in problems) == ["bogus", "model.threads"]


def test_choice_and_list_settings_are_checked() -> None:
    settings, problems = parse_settings(
        {"agent": {"edits": "confirm", "allowCommands": ["pytest", " ", "npm test"]}}
    )
    assert problems == []
    assert settings.agent.edits == "confirm"
    assert settings.agent.allowCommands == ("pytest", "npm test")
    settings, problems = parse_settings(
        {"agent.edits": "yolo", "agent.allowCommands": "pytest", "agent.secretFiles": [1]}
    )
    assert settings.agent.edits == "apply" and settings.agent.allowCommands == ()
    assert settings.agent.secretFiles == ()
    assert len(problems) == 3
    assert "expected one of apply, confirm, got 'yolo'" in problems[0]
    assert "expected a list of strings" in problems[1]
