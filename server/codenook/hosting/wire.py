"""The messages between an editor window and the engine host: one JSON object per line.

Everything a generation needs crosses the socket except its two callbacks. ``on_text`` and
``until`` stay in the window: the host streams each new piece of text back (``watch``), and
the window calls them exactly as the engine thread would, in the same order, on the same
texts; when ``until`` says done, the window asks the host to stop and keeps the text it
judged. So a completion is the same text whether the engine is in-process or shared.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from codenook.engine.models import NoModel, resolve_model_path
from codenook.engine.protocol import (
    Alternative,
    EngineCounters,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    prompt_parts,
)
from codenook.engine.scheduler import Status
from codenook.settings import Settings

VERSION = 1
MAX_LINE = 256 * 1024 * 1024  # an agent's prompt can be large; a line is still bounded


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value


def request_to_wire(request: GenerationRequest) -> dict[str, Any]:
    return {
        "prompt": [[text, special] for text, special in prompt_parts(request.prompt)],
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "time_budget_s": request.time_budget_s,
        "checkpoint_after": list(request.checkpoint_after),
        "checkpoint_end": request.checkpoint_end,
        "alternatives": request.alternatives,
        "until_data": request.until_data,
        "watch": request.on_text is not None or request.until is not None,
    }


def request_from_wire(data: dict[str, Any]) -> tuple[GenerationRequest, bool]:
    """The request and whether the window watches its text (streams it back)."""
    prompt = [(str(text), bool(special)) for text, special in data["prompt"]]
    budget = data.get("time_budget_s")
    request = GenerationRequest(
        prompt,
        max_tokens=int(data.get("max_tokens", 64)),
        stop=[str(s) for s in data.get("stop", [])],
        time_budget_s=float(budget) if budget is not None else None,
        checkpoint_after=[int(i) for i in data.get("checkpoint_after", [])],
        checkpoint_end=bool(data.get("checkpoint_end", False)),
        alternatives=int(data.get("alternatives", 1)),
        until_data=until if isinstance(until := data.get("until_data"), dict) else None,
    )
    return request, bool(data.get("watch", False))


def result_to_wire(result: GenerationResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def result_from_wire(data: dict[str, Any]) -> GenerationResult:
    known = {f.name for f in dataclasses.fields(GenerationResult)}
    result = GenerationResult(**{k: v for k, v in data.items() if k in known})
    # Alternatives come back whole (judged on the host, see the daemon) and are
    # post-processed in the window.
    result.alternatives = [Alternative(**a) for a in data.get("alternatives", [])]
    return result


def info_to_wire(info: ModelInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


def info_from_wire(data: dict[str, Any]) -> ModelInfo:
    fields = dict(data)
    fields["fim"] = FimTokens(**fields.get("fim", {}))
    known = {f.name for f in dataclasses.fields(ModelInfo)}
    return ModelInfo(**{k: v for k, v in fields.items() if k in known})


def status_to_wire(status: Status) -> dict[str, Any]:
    return dataclasses.asdict(status)


def status_from_wire(data: dict[str, Any]) -> Status:
    return Status(
        data.get("state", "failed"),
        int(data.get("queue_length", 0)),
        float(data.get("last_tokens_per_s", 0.0)),
        data.get("error"),
    )


def counters_from_wire(data: dict[str, Any], into: EngineCounters) -> None:
    for name in (f.name for f in dataclasses.fields(EngineCounters)):
        if name in data:
            setattr(into, name, int(data[name]))


# The load-time settings a window sends the host: the host is started with them, and a host
# loaded differently is reported to the window, not silently shared.
FINGERPRINT_KEYS = (
    "model.contextSize",
    "model.threads",
    "model.gpuLayers",
    "model.batchSize",
    "engine.prefixCache",
    "engine.checkpointMemoryMiB",
    "completion.alternatives",
)
# Of those, what changes what a window gets (the rest are the host owner's tuning); a larger
# context than the window asked for is no difference.
COMPARED = ("model.path", "model.contextSize", "model.gpuLayers", "engine.prefixCache")


def fingerprint(settings: Settings, *, host: bool = False) -> dict[str, Any]:
    """The model file and the load-time settings of ``settings``, comparable across processes.
    A window that names no model (``model.path`` unset) takes the host's: its path is None."""
    model: str | None = None
    if settings.model.path or host:
        try:
            model = str(resolve_model_path(settings.model.path).resolve())
        except NoModel:
            model = None
    values: dict[str, Any] = {"model.path": model}
    for key in FINGERPRINT_KEYS:
        section, name = key.split(".")
        values[key] = getattr(getattr(settings, section), name)
    return values


def differences(host: dict[str, Any], window: dict[str, Any]) -> list[str]:
    """``key is X on the host, Y in this window`` for each load-time setting that matters."""
    found = []
    for key in COMPARED:
        wanted, has = window.get(key), host.get(key)
        if wanted is None or wanted == has:
            continue
        if key == "model.contextSize" and isinstance(has, int) and has >= wanted:
            continue
        found.append(f"{key} is {has!r} on the host, {wanted!r} in this window")
    return found
