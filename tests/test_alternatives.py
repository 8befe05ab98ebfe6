"""Alternatives (``completion.alternatives``): several suggestions from one read of the prompt.

Exact rules first (which first tokens branch, how branches stop, what the service keeps), with
scripted steps and the fake engine; then the real llama.cpp engine on SmolLM2 and on the
hybrid test model, directly and through the real LSP transport.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codenook.completion.postprocess import Judge, Shape
from codenook.completion.service import CompletionService, Shown, typed_through
from codenook.engine import branches
from codenook.engine.llama import LlamaEngine
from codenook.engine.protocol import GenerationRequest, GenerationResult, run_to_end
from codenook.engine.scheduler import EngineWorker, Priority, Superseded
from codenook.settings import Settings
from codenook.text.documents import Document
from fake_engine import FakeEngine

# -- which first tokens branch -------------------------------------------------------------

PIECES = {0: b"", 1: b"return", 2: b"ret", 3: b" x", 4: b"y", 5: b"(", 6: b"z", 7: b" ", 8: b"urn"}


def info(token: int) -> tuple[bool, bytes]:
    return token == 0, PIECES.get(token, b"?")


def test_first_tokens_are_the_greedy_one_then_the_next_likely_that_can_differ() -> None:
    # Ranked: 1 "return", 0 end, 2 "ret" (a prefix of "return"), 3 " x", 4 "y", 5 "(".
    logits = np.array([8.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0], dtype=np.float32)
    assert branches.first_tokens(logits, 3, info) == [1, 3, 4]
    assert branches.first_tokens(logits, 1, info) == [1]
    assert branches.first_tokens(logits, 8, info) == [1, 3, 4, 5, 6]  # all there are
    # A lone space may go on as anything: " x" is not skipped for starting with it.
    spaced = np.array([0, 0, 0, 6.0, 0, 0, 0, 9.0, 0], dtype=np.float32)
    assert branches.first_tokens(spaced, 2, info) == [7, 3]


# -- how branches advance and stop ---------------------------------------------------------


class Script:
    """A model whose next token is fixed per sequence: ``plans[seq]`` in order, then end."""

    def __init__(self, plans: dict[int, list[int]]) -> None:
        self.plans = plans
        self.batches: list[list[tuple[int, int, int]]] = []

    def step(self, entries: list[tuple[int, int, int]]) -> list[int]:
        self.batches.append(entries)
        nexts = []
        for seq, pos, _ in entries:
            plan = self.plans[seq]
            at = pos - 10 + 1  # the prompt ends at position 10
            nexts.append(plan[at] if at < len(plan) else 0)
        return nexts


def lockstep(request: GenerationRequest, script: Script, firsts: list[int]) -> list[Any]:
    steps = branches.lockstep(
        request, lambda: False, 0.0, firsts, [0, 5, 6][: len(firsts)], 10, info, script.step,
        lambda: True,
    )  # fmt: skip
    return [(o.text, o.stop_reason, o.generated_tokens) for o in run_to_end(steps)]


def test_branches_advance_together_one_batch_per_step_at_their_own_positions() -> None:
    script = Script({0: [1, 3, 5], 5: [4, 3], 6: [6, 6, 6, 6]})
    outcomes = lockstep(GenerationRequest("p", max_tokens=8), script, [1, 4, 6])
    assert outcomes == [("return x(", "eos", 3), ("y x", "eos", 2), ("zzzz", "eos", 4)]
    # Every live branch in each batch, each at the next position of its own sequence.
    assert script.batches[0] == [(0, 10, 1), (5, 10, 4), (6, 10, 6)]
    assert script.batches[2] == [(0, 12, 5), (6, 12, 6)]
    assert [len(b) for b in script.batches] == [3, 3, 2, 1]


def test_each_branch_stops_on_its_own_until_limits_and_stop_strings() -> None:
    streamed: list[str] = []
    request = GenerationRequest(
        "p",
        max_tokens=3,
        stop=["zz"],
        until=lambda text: text.endswith(" x"),
        until_alternative=lambda text: text == "yy",
        on_text=streamed.append,
    )
    script = Script({0: [1, 3, 3], 5: [4, 4, 4], 6: [5, 6, 6]})
    outcomes = lockstep(request, script, [1, 4, 5])
    assert outcomes == [("return x", "until", 2), ("yy", "until", 2), ("(", "stop", 3)]
    assert streamed == ["return", " x"]  # only the greedy branch streams


def test_max_tokens_and_an_alternative_that_became_another_text_is_dropped() -> None:
    script = Script({0: [4, 4, 4, 4], 5: [4, 4, 4, 4], 6: [3, 3, 3, 3]})
    # Branch 5 starts with "y" like the greedy one: same text, so it is left out.
    outcomes = lockstep(GenerationRequest("p", max_tokens=2), script, [4, 4, 3])
    assert outcomes == [("yy", "length", 2), (" x x", "length", 2)]


def test_a_branch_that_reaches_a_text_another_had_is_dropped() -> None:
    # "ret" + "urn" is "return", which the greedy branch wrote one step earlier.
    script = Script({0: [1, 3, 3], 5: [2, 8, 3], 6: [4, 4, 4]})
    outcomes = lockstep(GenerationRequest("p", max_tokens=3), script, [1, 2, 4])
    assert outcomes == [("return x x", "length", 3), ("yyy", "length", 3)]


def test_time_and_cancel_end_every_branch() -> None:
    script = Script({0: [1] * 9, 5: [4] * 9})
    timed = GenerationRequest("p", max_tokens=8, time_budget_s=0.0)
    assert [o[1] for o in lockstep(timed, script, [1, 4])] == ["time", "time"]
    steps = branches.lockstep(
        GenerationRequest("p"), lambda: True, 0.0, [1, 4], [0, 5], 10, info, script.step,
        lambda: True,
    )  # fmt: skip
    assert [o.stop_reason for o in run_to_end(steps)] == ["cancelled", "cancelled"]


# -- what the service keeps ----------------------------------------------------------------


class Host:
    """The fake engine behind the host interface the service uses."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.error = None

    async def generate(
        self, request: GenerationRequest, priority: Priority, key: str | None = None
    ) -> GenerationResult:
        return run_to_end(self.engine.start(request, lambda: False))


CODE = "def f(x):\n    return "
QUIET = Settings().with_values(completion__speculative=False)


def _service(reply: str, others: list[str]) -> tuple[CompletionService, FakeEngine]:
    engine = FakeEngine(reply=reply)
    engine.others = others
    return CompletionService(Host(engine), lambda: QUIET), engine  # type: ignore[arg-type]


def _complete(service: CompletionService, text: str = CODE, count: int = 3) -> list[str]:
    doc = Document("file:///f.py", text, 1)
    suggestion = asyncio.run(service.complete(doc.snapshot(), len(text), alternatives=count))
    return suggestion.texts


def test_alternatives_are_post_processed_and_empty_or_repeated_ones_dropped() -> None:
    service, engine = _service("x + 1", ["   \n", "x + 1", "x * 2", "x - 1"])
    assert _complete(service, count=5) == ["x + 1", "x * 2", "x - 1"]
    request = engine.requests[-1]
    assert request.alternatives == 5 and request.until_alternative is not None
    # Asked again there: the list from memory, cut to the number asked for.
    assert _complete(service, count=2) == ["x + 1", "x * 2"]
    assert len(engine.requests) == 1
    # Two more asked for: one blank, one the same as the first.
    service, engine = _service("x + 1", ["   \n", "x + 1", "x * 2", "x - 1"])
    assert _complete(service, count=3) == ["x + 1"]


def test_one_suggestion_while_typing_asks_the_engine_for_one() -> None:
    service, engine = _service("x + 1", ["x * 2"])
    assert _complete(service, count=1) == ["x + 1"]
    assert engine.requests[-1].alternatives == 1


def test_the_suggestion_on_screen_stays_first_and_each_listed_one_can_be_typed_through() -> None:
    service, engine = _service("x + 1", ["x * 2"])
    assert _complete(service, count=1) == ["x + 1"]
    engine.reply, engine.others = "x", ["x + 1", "x ** 2"]  # the model answers otherwise now
    assert _complete(service) == ["x + 1", "x", "x ** 2"]
    assert len(engine.requests) == 2  # the list needed the model once
    # Cycled to the third and typed its start: the rest of that one, without the model.
    assert _complete(service, CODE + "x *", count=1) == ["* 2"]
    assert len(engine.requests) == 2
    # Asking for the list again after typing: what is left of each listed text that fits,
    # from memory (the list of a place is computed once).
    assert _complete(service, CODE + "x", count=3) == [" + 1", " ** 2"]
    assert len(engine.requests) == 2 and service.counters.typed_through == 2
    # Elsewhere the list is computed again.
    assert _complete(service, CODE + "y", count=3)[0] == "x"
    assert len(engine.requests) == 3


def test_a_newer_keystroke_supersedes_a_list_being_computed() -> None:
    engine = FakeEngine(reply="0123456789")
    engine.others = ["x"]
    engine.gate.clear()  # the list's job waits at its first token
    worker = EngineWorker(lambda: engine).start()

    async def main() -> tuple[GenerationResult, BaseException | None]:
        listing = GenerationRequest("list", max_tokens=10, alternatives=3)
        older = asyncio.ensure_future(worker.generate(listing, Priority.COMPLETION, key="doc"))
        await asyncio.to_thread(engine.running.wait)
        newer = asyncio.ensure_future(
            worker.generate(GenerationRequest("type", max_tokens=2), Priority.COMPLETION, "doc")
        )
        await asyncio.sleep(0)  # the newer request is submitted: its first step is submit()
        engine.gate.set()
        done = await newer
        try:
            await older
        except Superseded as exc:
            return done, exc
        return done, None

    try:
        newer, superseded = asyncio.run(main())
    finally:
        worker.stop()
    assert isinstance(superseded, Superseded) and newer.text == "01"
    assert engine.started == ["list", "type"] and engine.counters.cancelled == 1


def test_the_judge_crosses_a_process_boundary_as_data() -> None:
    judge = Judge(Shape("    return ", "", "", "def f(x):", 4), dropped_indent="")
    again = Judge.from_data(json.loads(json.dumps(judge.to_data())))
    assert again == judge
    for text in ("x + 1", "x + 1\n", "x + 1\nprint(x)\n"):
        assert again(text) == judge(text)
    assert judge("x + 1\nprint(x)\n")  # back at the top level: done
    for bad in ({}, {"shape": {}}, {"shape": {**judge.to_data()["shape"], "max_lines": "4"}}):
        with pytest.raises(ValueError):
            Judge.from_data(bad)


def test_the_service_sends_its_judge_along_with_a_list() -> None:
    service, engine = _service("x + 1", ["x * 2"])
    _complete(service, count=3)
    listing = engine.requests[-1]
    assert listing.until_data is not None
    assert Judge.from_data(listing.until_data) == listing.until_alternative == listing.until
    _complete(service, "def g():\n    return ", count=1)
    assert engine.requests[-1].until_data is None  # one text: the window judges it


def test_typed_through_tries_the_shown_text_then_the_listed_others() -> None:
    shown = Shown("a = ", "", "b + c", ("c - b", "b + d"))
    assert typed_through(shown, "a = c", "") == " - b"
    assert typed_through(shown, "a = b + ", "") == "c"  # the first listed one wins
    assert typed_through(shown, "a = d", "") is None


# -- the real engine -----------------------------------------------------------------------

FIB = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "


def never() -> bool:
    return False


def _hybrid_prompt(engine: LlamaEngine) -> str:
    fim = engine.info.fim
    return f"{fim.prefix}def add(a, b):\n    return {fim.suffix}\n{fim.middle}"


@pytest.mark.parametrize("model", ["smollm", "hybrid"])
def test_the_prompt_is_read_once_and_the_greedy_text_is_unchanged(
    model: str, smollm_path: Path, hybrid_path: Path
) -> None:
    path = smollm_path if model == "smollm" else hybrid_path
    single = LlamaEngine(path, n_ctx=512, n_batch=64)
    many = LlamaEngine(path, n_ctx=512, n_batch=64)
    try:
        prompt = FIB if model == "smollm" else _hybrid_prompt(single)
        one = single.generate(GenerationRequest(prompt, max_tokens=12), never)
        three = many.generate(GenerationRequest(prompt, max_tokens=12, alternatives=3), never)
        assert three.prefilled_tokens == three.prompt_tokens == one.prompt_tokens
        assert many.counters.prefilled_tokens == three.prompt_tokens  # once for the list
        assert many.counters.requests == 1
        assert three.text == one.text
        texts = [three.text, *(a.text for a in three.alternatives)]
        assert len(texts) == 3 and len(set(texts)) == 3, texts
        assert many.counters.generated_tokens == sum(
            [three.generated_tokens, *(a.generated_tokens for a in three.alternatives)]
        )
        # The lane keeps the prompt (the next keystroke reuses it) and the branch sequences
        # are empty again: the same request gives the same texts.
        again = many.generate(GenerationRequest(prompt, max_tokens=12, alternatives=3), never)
        assert again.cached_tokens >= again.prompt_tokens - 2
        assert [again.text, *(a.text for a in again.alternatives)] == texts
        # An engine without branch sequences gives the greedy text alone.
        assert not single.generate(GenerationRequest(prompt, alternatives=1), never).alternatives
    finally:
        single.close()
        many.close()


@pytest.mark.parametrize("model", ["smollm", "hybrid"])
def test_each_alternative_is_what_its_first_token_gives_alone(
    model: str, smollm_path: Path, hybrid_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch decoded in a copied sequence (a hybrid model's recurrent state copied too)
    gives the text its first token gives when it is the only branch, in the lane itself."""
    engine = LlamaEngine(smollm_path if model == "smollm" else hybrid_path, n_ctx=512, n_batch=64)
    try:
        prompt = FIB if model == "smollm" else _hybrid_prompt(engine)
        chosen: list[list[int]] = []
        pick = branches.first_tokens

        def spy(logits: np.ndarray, count: int, info: branches.TokenInfo) -> list[int]:
            chosen.append(pick(logits, count, info))
            return chosen[-1]

        monkeypatch.setattr(branches, "first_tokens", spy)
        asked = GenerationRequest(prompt, max_tokens=12, alternatives=3)
        listed = engine.generate(asked, never)
        texts = [listed.text, *(a.text for a in listed.alternatives)]
        assert len(chosen[0]) == len(texts) == 3
        for token, text in zip(chosen[0], texts, strict=True):
            engine._clear(engine._lanes[0])  # read the prompt again, as the list did
            monkeypatch.setattr(branches, "first_tokens", lambda *_a, t=token: [t])
            assert engine.generate(asked, never).text == text
    finally:
        engine.close()


def test_a_newer_keystroke_stops_every_branch_and_leaves_nothing_behind(
    smollm_path: Path,
) -> None:
    engine = LlamaEngine(smollm_path, n_ctx=512, n_batch=64)
    try:
        checks = iter(range(100))

        def cancelled() -> bool:  # the scheduler's flag, set after a few tokens
            return next(checks) >= 4

        asked = GenerationRequest(FIB, max_tokens=12, alternatives=3)
        stopped = engine.generate(asked, cancelled)
        assert stopped.stop_reason == "cancelled"
        assert [a.stop_reason for a in stopped.alternatives] == ["cancelled", "cancelled"]
        assert engine.counters.cancelled == 1
        # The branch sequences were emptied: the next list is the one a fresh engine gives.
        again = engine.generate(asked, never)
        fresh = LlamaEngine(smollm_path, n_ctx=512, n_batch=64)
        try:
            first = fresh.generate(asked, never)
        finally:
            fresh.close()
        assert [again.text, *(a.text for a in again.alternatives)] == [
            first.text,
            *(a.text for a in first.alternatives),
        ]
    finally:
        engine.close()


def test_an_engine_loaded_for_one_suggestion_ignores_the_ask(smollm_path: Path) -> None:
    engine = LlamaEngine(smollm_path, n_ctx=512, n_batch=64, alternatives=1)
    try:
        result = engine.generate(GenerationRequest(FIB, max_tokens=4, alternatives=3), never)
        assert result.text and result.alternatives == []
    finally:
        engine.close()


# -- through the real LSP transport ----------------------------------------------------------

SERVER = [sys.executable, "-m", "codenook", "serve"]
ROOT = Path(__file__).parent / "workspace"
SETTINGS: dict[str, Any] = {
    "completion": {"maxTokens": 16, "timeBudgetMs": 60000, "speculative": False},
    "context": {"crossFileTokens": 0},
}
PY = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n    return '


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


async def _serve(client: LanguageClient, model: dict[str, Any]) -> None:
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=ROOT.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=ROOT.as_uri(), name="workspace")],
        initialization_options={**SETTINGS, "model": {"batchSize": 64, **model}},
    )
    await client.initialize_session(params)
    for _ in range(400):
        stats = _plain(await client.protocol.send_request_async("codenook/stats", {}))
        if stats.get("state") in ("idle", "failed"):
            assert stats["state"] == "idle", stats
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the model never loaded")


async def _ask(client: LanguageClient, uri: str, kind: types.InlineCompletionTriggerKind):
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(2, len("    return ")),
            context=types.InlineCompletionContext(trigger_kind=kind),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    return [str(i.insert_text) for i in result.items]


async def _list_from_one_read(client: LanguageClient, name: str) -> None:
    uri = (ROOT / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, PY))
    )
    listed = await _ask(client, uri, types.InlineCompletionTriggerKind.Invoked)
    stats = _plain(await client.protocol.send_request_async("codenook/stats", {}))
    counters, last = _plain(stats["counters"]), _plain(stats["lastCompletion"])
    assert len(listed) >= 2 and len(set(listed)) == len(listed), listed
    assert last["items"] == len(listed)
    # One engine request; its prompt read once (a cold lane: every prompt token, once).
    assert counters["requests"] == 1
    assert counters["prefilled_tokens"] == last["prompt_tokens"] == last["prefilled_tokens"]
    typing = await _ask(client, uri, types.InlineCompletionTriggerKind.Automatic)
    assert typing == listed[:1]  # while typing: the first alone (here from the screen)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def smollm_client(lsp_client: LanguageClient):
    await _serve(lsp_client, {})
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def hybrid_client(lsp_client: LanguageClient, hybrid_path: Path):
    await _serve(lsp_client, {"path": str(hybrid_path)})
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="module")
async def test_invoked_request_lists_distinct_items_from_one_read_smollm(
    smollm_client: LanguageClient,
) -> None:
    await _list_from_one_read(smollm_client, "alternatives_smollm.py")


@pytest.mark.asyncio(loop_scope="module")
async def test_invoked_request_lists_distinct_items_from_one_read_hybrid(
    hybrid_client: LanguageClient,
) -> None:
    await _list_from_one_read(hybrid_client, "alternatives_hybrid.py")
