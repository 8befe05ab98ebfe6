"""Exact streaming-edit semantics with scripted replies: what reaches the document, when."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from codenook.assist.streaming import Edit, EditStream, Outcome, run_stream

pytestmark = pytest.mark.anyio

DOC = "before\n    old_a()\n    old_b()\nafter\n"
START = DOC.index("    old_a")
ORIGINAL = "    old_a()\n    old_b()"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClient:
    """Applies edits to its own copy, like an editor; can refuse or simulate typing."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.text = DOC
        self.applied: list[Edit] = []
        self.refuse_after = refuse_after

    async def apply(self, edit: Edit) -> bool:
        if self.refuse_after is not None and len(self.applied) >= self.refuse_after:
            return False
        self.text = edit.apply(self.text)
        self.applied.append(edit)
        return True


async def pieces(reply: str, chunk: int = 3) -> AsyncIterator[str]:
    for i in range(0, len(reply), chunk):
        yield reply[i : i + chunk]


def no_reindent(lines: list[str]) -> list[str]:
    return lines


def accept(_: str) -> None:
    return None


async def run(
    reply: str, client: FakeClient, *, validate=accept, cancelled=lambda: False, chunk: int = 3
) -> Outcome:
    return await run_stream(
        pieces(reply, chunk),
        EditStream(START, ORIGINAL),
        client.apply,
        no_reindent,
        validate,
        cancelled,
    )


REPLY = "Sure!\n```python\n    new_a()\n    new_b()\n    new_c()\n```\nDone."


async def test_streamed_edits_add_up_to_the_final_text() -> None:
    client = FakeClient()
    outcome = await run(REPLY, client)
    assert outcome.status == "applied"
    assert outcome.text == "    new_a()\n    new_b()\n    new_c()"
    assert client.text == DOC.replace(ORIGINAL, outcome.text)
    assert len(client.applied) >= 3  # line by line, not one final edit
    # The first edit replaces the original region; the others only append.
    assert client.applied[0].end - client.applied[0].start == len(ORIGINAL)
    assert all(e.start == e.end for e in client.applied[1:])


async def test_same_final_text_whatever_the_chunking() -> None:
    finals = set()
    for chunk in (1, 2, 5, 17, 1000):
        client = FakeClient()
        outcome = await run(REPLY, client, chunk=chunk)
        finals.add((outcome.text, client.text))
    assert len(finals) == 1


async def test_reply_without_fence_is_taken_whole() -> None:
    client = FakeClient()
    outcome = await run("    bare()\n    code()", client)
    assert outcome.status == "applied" and client.text == DOC.replace(ORIGINAL, outcome.text)


async def test_user_edit_stops_the_stream_and_overwrites_nothing() -> None:
    client = FakeClient(refuse_after=1)
    outcome = await run(REPLY, client)
    assert outcome.status == "stopped"
    assert len(client.applied) == 1
    # Nothing more was sent: the client's document is what it was after the first edit.
    assert client.text == client.applied[0].apply(DOC)


async def test_cancel_restores_the_original_in_one_edit() -> None:
    client = FakeClient()
    seen = {"n": 0}

    def cancelled() -> bool:
        seen["n"] += 1
        return seen["n"] > 45  # after two streamed lines

    outcome = await run(REPLY, client, cancelled=cancelled, chunk=1)
    assert outcome.status == "cancelled"
    assert client.text == DOC
    assert len(client.applied) >= 2  # some streamed edits, then exactly one restore
    restore = client.applied[-1]
    assert restore.text == ORIGINAL


async def test_rejected_reply_restores_the_original() -> None:
    def reject(_: str) -> None:
        raise ValueError("the model's reply has syntax errors; nothing changed")

    client = FakeClient()
    outcome = await run(REPLY, client, validate=reject)
    assert outcome.status == "rejected" and "syntax errors" in outcome.message
    assert client.text == DOC


async def test_finish_appends_a_last_line_without_newline() -> None:
    client = FakeClient()
    outcome = await run("```\n    x = 1\n    y = 2", client)  # no closing fence, no newline
    assert outcome.text == "    x = 1\n    y = 2"
    assert client.text == DOC.replace(ORIGINAL, outcome.text)
