"""``codenook bench assist``: hover latency (cold, cached), keystrokes typed while a hover is
being generated against the same keystrokes with the engine idle, and a streamed code action.

It drives the real server over stdio like an editor: opens ``examples/stats.py``-like code,
hovers a function twice, then runs "Add docstring" and answers every ``workspace/applyEdit``
by applying it and sending ``didChange``, recording when the first streamed line arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.report import percentile
from codenook.devtools.bench.rpc import start_server
from codenook.text.positions import Encoding, LineIndex

CODE = """import math
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def variance(values: Sequence[float]) -> float:
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def stddev(values: Sequence[float]) -> float:
    return math.sqrt(variance(values))
"""


def _position(text: str, needle: str) -> dict[str, int]:
    lines = LineIndex(text)
    line, character = lines.position(text.index(needle), Encoding.UTF16)
    return {"line": line, "character": character}


async def _measure(model: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "hover": {"timeBudgetMs": 600000, "maxTokens": 256},
        "actions": {"maxTokens": 256},
        # Every keystroke asks the model (no typed-through or speculative shortcut).
        "completion": {"speculative": False, "maxTokens": 16},
    }
    if model:
        settings["model"] = {"path": model}
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as log:
        root = Path(folder)
        uri = (root / "stats.py").as_uri()
        rpc = await start_server(log)
        doc: dict[str, Any] = {"version": 1, "text": CODE}
        first_edit: list[float] = []
        edits: list[float] = []

        async def apply_edit(params: Any) -> dict[str, Any]:
            now = time.perf_counter()
            (change,) = params["edit"]["documentChanges"]
            if change["textDocument"]["version"] != doc["version"]:
                return {"applied": False}
            text = doc["text"]
            for edit in change["edits"]:
                lines = LineIndex(text)
                rng = edit["range"]
                start = lines.offset(
                    rng["start"]["line"], rng["start"]["character"], Encoding.UTF16
                )
                end = lines.offset(rng["end"]["line"], rng["end"]["character"], Encoding.UTF16)
                text = text[:start] + edit["newText"] + text[end:]
                doc["version"] += 1
                doc["text"] = text
                # Like VS Code: the change is reported before the edit request is answered.
                await rpc.notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": doc["version"]},
                        "contentChanges": [{"range": rng, "text": edit["newText"]}],
                    },
                )
            if not first_edit:
                first_edit.append(now)
            edits.append(now)
            return {"applied": True}

        rpc.handlers["workspace/applyEdit"] = apply_edit
        try:
            await rpc.call(
                "initialize",
                {
                    "processId": os.getpid(),
                    "rootUri": root.as_uri(),
                    "initializationOptions": settings,
                    "capabilities": {
                        "general": {"positionEncodings": ["utf-16"]},
                        "workspace": {
                            "applyEdit": True,
                            "workspaceEdit": {"documentChanges": True},
                        },
                        "window": {"workDoneProgress": True},
                    },
                },
                timeout=60,
            )
            await rpc.notify("initialized", {})
            await rpc.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": CODE}},
            )
            for _ in range(3000):
                stats = await rpc.call("codenook/stats", {})
                if stats.get("state") in ("idle", "failed"):
                    break
                await asyncio.sleep(0.05)
            if stats.get("state") != "idle":
                raise BenchError(f"the model did not load: {stats.get('error')}")
            hover_params = {
                "textDocument": {"uri": uri},
                "position": _position(CODE, "variance(values: "),
            }
            timings: dict[str, Any] = {"model": stats.get("model")}
            for label in ("hover_cold_ms", "hover_cached_ms"):
                started = time.perf_counter()
                await rpc.call("textDocument/hover", hover_params, timeout=600)
                timings[label] = round((time.perf_counter() - started) * 1000, 1)
            start = _position(CODE, "    m = mean")
            actions = await rpc.call(
                "textDocument/codeAction",
                {
                    "textDocument": {"uri": uri},
                    "range": {"start": start, "end": start},
                    "context": {"diagnostics": []},
                },
            )
            docstring = next(a for a in actions if a["title"] == "codenook: Add docstring")
            started = time.perf_counter()
            result = await rpc.call(
                "workspace/executeCommand",
                {
                    "command": docstring["command"]["command"],
                    "arguments": docstring["command"]["arguments"],
                },
                timeout=600,
            )
            done = time.perf_counter()
            timings.update(
                {
                    "action_status": result.get("status"),
                    "action_first_line_ms": round((first_edit[0] - started) * 1000, 1)
                    if first_edit
                    else None,
                    "action_total_ms": round((done - started) * 1000, 1),
                    "action_edits": len(edits),
                }
            )
            # Last, so the action above reads the same document as in earlier versions.
            timings.update(await _typing_while_hovering(rpc, uri, doc))
            return timings
        finally:
            await rpc.close()
            rpc.process.terminate()
            await rpc.process.wait()


KEYSTROKES = "total = mean(values) + stddev(values)"


async def _keystrokes(rpc: Any, uri: str, doc: dict[str, Any], line: int) -> list[float]:
    """Type ``KEYSTROKES`` at the start of ``line`` one character at a time, asking for a
    completion after each like an editor, and return each answer's latency in ms."""
    latencies: list[float] = []
    for column, char in enumerate(KEYSTROKES):
        doc["version"] += 1
        position = {"line": line, "character": column}
        await rpc.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": doc["version"]},
                "contentChanges": [{"range": {"start": position, "end": position}, "text": char}],
            },
        )
        lines = doc["text"].split("\n")
        lines[line] = lines[line][:column] + char + lines[line][column:]
        doc["text"] = "\n".join(lines)
        started = time.perf_counter()
        await rpc.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": column + 1},
                "context": {"triggerKind": 2},
            },
            timeout=600,
        )
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def _typing_while_hovering(rpc: Any, uri: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Keystroke latency with the engine idle, then while a cold hover explanation is being
    generated (issue 14: a keystroke parks the hover; it must not wait for it)."""

    async def blank_line() -> int:
        doc["version"] += 1
        line = doc["text"].count("\n")
        position = {"line": line, "character": 0}
        await rpc.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": doc["version"]},
                "contentChanges": [{"range": {"start": position, "end": position}, "text": "\n"}],
            },
        )
        doc["text"] += "\n"
        return line

    idle = await _keystrokes(rpc, uri, doc, await blank_line())
    line = await blank_line()
    hover = asyncio.ensure_future(
        rpc.call(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": _position(doc["text"], "stddev(values: ")},
            timeout=600,
        )
    )
    await asyncio.sleep(0.2)  # the hover's generation is under way
    busy = await _keystrokes(rpc, uri, doc, line)
    hover_running = not hover.done()
    await hover
    return {
        "keystroke_idle_median_ms": round(statistics.median(idle), 1),
        "keystroke_idle_p95_ms": round(percentile(idle, 0.95) or 0.0, 1),
        "keystroke_hovering_median_ms": round(statistics.median(busy), 1),
        "keystroke_hovering_p95_ms": round(percentile(busy, 0.95) or 0.0, 1),
        # A keystroke that waited for the whole explanation shows here, not in the median.
        "keystroke_idle_max_ms": round(max(idle), 1),
        "keystroke_hovering_max_ms": round(max(busy), 1),
        "hover_still_running_after_typing": hover_running,
        "typing_while_hovering_ratio": round(statistics.median(busy) / statistics.median(idle), 2),
    }


def run_assist(model: str | None, json_path: Path | None) -> int:
    timings = asyncio.run(_measure(model))
    for key, value in timings.items():
        print(f"{key:<34} {value}")
    if json_path is not None:
        json_path.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    print(
        "(one run on this machine; compare only numbers measured in the same run)", file=sys.stderr
    )
    return 0
