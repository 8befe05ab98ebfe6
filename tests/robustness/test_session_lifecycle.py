"""The LSP lifecycle under abuse: before ``initialize``, a second ``initialize``, after
``shutdown``, ``exit`` with and without ``shutdown`` and with work in flight, quick model
reloads, and progress for a client that cannot show it."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from rawclient import (
    CODE,
    RawClient,
    complete,
    initialize,
    inline_params,
    open_document,
    shutdown_and_exit,
    wait_state,
)

SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600
REQUEST_CANCELLED = -32800
CODENOOK_SERVE = [sys.executable, "-m", "codenook", "serve"]
INLINE = "textDocument/inlineCompletion"
STUCK = "threads still running"  # the exit backstop's line: the clean path never needs it
REPLY = "```python\ndef area(r):\n    '''Area of a circle.'''\n    return 3.14 * r * r\n```\n"


def _init_params() -> dict[str, Any]:
    return {"processId": None, "rootUri": None, "capabilities": {}}


# -- before initialize ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [None, CODENOOK_SERVE], ids=["serve_fake", "codenook-serve"])
def test_requests_before_initialize_are_server_not_initialized(argv: list[str] | None) -> None:
    with RawClient.spawn(argv) if argv else RawClient.spawn(fake={}) as client:
        for method, params in [
            ("codenook/stats", {}),
            ("textDocument/hover", {"textDocument": {"uri": "file:///a.py"}, "position": {}}),
            ("shutdown", None),
            ("codenook/unknown", {}),
        ]:
            reply = client.request(method, params, timeout=5)
            assert reply["error"]["code"] == SERVER_NOT_INITIALIZED, (method, reply)
            assert "initialize" in reply["error"]["message"]
        client.notify("initialized", {})  # dropped, like every notification but exit
        initialize(client, ready=False)
        assert "result" in client.request("codenook/stats", {})
        assert shutdown_and_exit(client) == 0


def test_exit_before_initialize_exits_1() -> None:
    with RawClient.spawn(fake={}) as client:
        client.notify("exit")
        assert client.wait_exit(5) == 1


# -- a second initialize -----------------------------------------------------------------------


def test_second_initialize_is_refused_and_changes_nothing() -> None:
    with RawClient.spawn(fake={"reply": "abc"}) as client:
        initialize(client)
        params = _init_params() | {"initializationOptions": {"model": {"contextSize": 1024}}}
        reply = client.request("initialize", params)
        assert reply["error"]["code"] == INVALID_REQUEST
        assert "initialize" in reply["error"]["message"]
        stats = wait_state(client, "idle")
        assert stats["modelReloads"] == 0
        uri = open_document(client, "again.py")
        assert complete(client, uri)["result"]["items"]
        assert shutdown_and_exit(client) == 0


# -- after shutdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [None, CODENOOK_SERVE], ids=["serve_fake", "codenook-serve"])
def test_requests_after_shutdown_are_invalid_request_and_exit_is_0(
    argv: list[str] | None,
) -> None:
    with RawClient.spawn(argv) if argv else RawClient.spawn(fake={}) as client:
        initialize(client, ready=False)
        assert client.request("shutdown", omit_params=True)["result"] is None
        for method in ("codenook/stats", "shutdown", "initialize", "textDocument/hover"):
            reply = client.request(method, _init_params() if method == "initialize" else {})
            assert reply["error"]["code"] == INVALID_REQUEST, (method, reply)
            assert "shut" in reply["error"]["message"]
        client.notify("textDocument/didOpen", {})  # ignored
        started = time.monotonic()
        client.notify("exit")
        assert client.wait_exit(5) == 0
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("argv", [None, CODENOOK_SERVE], ids=["serve_fake", "codenook-serve"])
def test_exit_without_shutdown_exits_1(argv: list[str] | None) -> None:
    with RawClient.spawn(argv) if argv else RawClient.spawn(fake={}) as client:
        initialize(client, ready=False)
        client.notify("exit")
        assert client.wait_exit(5) == 1


def test_end_of_input_after_shutdown_exits_0() -> None:
    with RawClient.spawn(fake={}) as client:
        initialize(client)
        assert client.request("shutdown", omit_params=True)["result"] is None
        client.close_input()
        assert client.wait_exit(5) == 0


# -- shutdown with work in flight ---------------------------------------------------------------


def test_shutdown_with_requests_in_flight_answers_all_and_exits_promptly() -> None:
    """Completions running and queued, an action streaming: shutdown answers null, every
    request in flight is answered once, and the process is gone within 2 s of exit."""
    with RawClient.spawn(fake={"step_s": 0.5, "reply": REPLY}) as client:
        client.answers["workspace/applyEdit"] = {"applied": True}
        initialize(client, {"workspace": {"applyEdit": True}})
        uris = [open_document(client, f"inflight{i}.py") for i in range(3)]
        ids = [client.send_request(INLINE, inline_params(uri, 4, 9)) for uri in uris]
        action = {
            "uri": uris[0],
            "version": 1,
            "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}},
            "action": "docstring",
        }
        command = {"command": "codenook.runAction", "arguments": [action]}
        ids.append(client.send_request("workspace/executeCommand", command))
        time.sleep(0.3)
        shutdown = client.request("shutdown", omit_params=True, timeout=5)
        assert shutdown.get("result", "missing") is None, shutdown
        for msg_id in ids:
            reply = client.read_until(msg_id, 5)
            if "error" in reply:
                assert reply["error"]["code"] in (REQUEST_CANCELLED, -32803), reply
        started = time.monotonic()
        client.notify("exit")
        assert client.wait_exit(5) == 0
        assert time.monotonic() - started < 2.0
        for msg_id in ids:
            assert len(client.responses(msg_id)) == 1, client.responses(msg_id)
        assert "dictionary changed size" not in client.stderr
        assert STUCK not in client.stderr


def test_exit_with_an_engine_job_queued_exits_within_2s() -> None:
    """No shutdown at all: exit while a slow job runs and another is queued."""
    with RawClient.spawn(fake={"step_s": 0.5, "reply": "abcdefgh"}) as client:
        initialize(client)
        for name in ("busy.py", "queued.py"):
            client.send_request(INLINE, inline_params(open_document(client, name), 4, 9))
        time.sleep(0.3)
        started = time.monotonic()
        client.notify("exit")
        assert client.wait_exit(5) == 1
        assert time.monotonic() - started < 2.0
        assert STUCK not in client.stderr


def test_shutdown_then_exit_with_a_job_queued_exits_within_2s() -> None:
    with RawClient.spawn(fake={"step_s": 0.5, "reply": "abcdefgh"}) as client:
        initialize(client)
        for name in ("busy2.py", "queued2.py"):
            client.send_request(INLINE, inline_params(open_document(client, name), 4, 9))
        time.sleep(0.3)
        client.request("shutdown", omit_params=True, timeout=5)
        started = time.monotonic()
        client.notify("exit")
        assert client.wait_exit(5) == 0
        assert time.monotonic() - started < 2.0
        assert STUCK not in client.stderr


# -- model reloads --------------------------------------------------------------------------------


def test_quick_model_setting_changes_end_with_the_last_model_loaded() -> None:
    """Two reloads while the first model is still loading: the engine ends idle, with the
    last settings, and tells nothing alarming."""
    with RawClient.spawn(fake={"load_s": 0.5, "reply": "abc"}) as client:
        initialize(client, ready=False)
        for size in (1024, 2048, 3072):
            client.notify(
                "workspace/didChangeConfiguration",
                {"settings": {"codenook": {"model": {"contextSize": size}}}},
            )
        stats = wait_state(client, "idle", "failed", timeout=10)
        assert stats["state"] == "idle" and stats["modelReloads"] == 3, stats
        assert "cannot join" not in client.stderr
        uri = open_document(client, "reloaded.py")
        assert complete(client, uri)["result"]["items"][0]["insertText"] == "abc"
        assert shutdown_and_exit(client) == 0


# -- progress --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [None, {}, {"workDoneProgress": False}, {"workDoneProgress": None}],
    ids=["no-window", "empty-window", "false", "null"],
)
def test_run_action_sends_no_progress_to_a_client_without_progress(window: Any) -> None:
    capabilities: dict[str, Any] = {"workspace": {"applyEdit": True}}
    if window is not None:
        capabilities["window"] = window
    assert _progress_creates(capabilities) == 0


def test_run_action_creates_progress_when_the_client_supports_it() -> None:
    capabilities = {"workspace": {"applyEdit": True}, "window": {"workDoneProgress": True}}
    assert _progress_creates(capabilities) >= 1


def _progress_creates(capabilities: dict[str, Any]) -> int:
    with RawClient.spawn(fake={"reply": REPLY}) as client:
        client.answers["workspace/applyEdit"] = {"applied": False}
        initialize(client, capabilities)
        uri = open_document(client, "progress.py", CODE)
        action = {
            "uri": uri,
            "version": 1,
            "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}},
            "action": "docstring",
        }
        reply = client.request(
            "workspace/executeCommand", {"command": "codenook.runAction", "arguments": [action]}
        )
        assert "result" in reply, reply
        assert shutdown_and_exit(client) == 0
        return len(client.from_server("window/workDoneProgress/create"))


# -- answers from the client ---------------------------------------------------------------------


def test_a_late_answer_to_a_cancelled_server_request_is_ignored() -> None:
    """The server asks for the configuration at start; shutdown cancels that request; the
    client's answer arrives afterwards and must not break the session."""
    with RawClient.spawn(fake={}) as client:
        client.auto_answer = False
        initialize(client, {"workspace": {"configuration": True}}, ready=False)
        asked = client.wait_for(
            lambda m: m.get("method") == "workspace/configuration", 5, "workspace/configuration"
        )
        assert client.request("shutdown", omit_params=True)["result"] is None
        client.send({"jsonrpc": "2.0", "id": asked["id"], "result": [{}]})
        assert client.request("codenook/stats", {})["error"]["code"] == INVALID_REQUEST
        client.notify("exit")
        assert client.wait_exit(5) == 0


def test_a_malformed_answer_fails_the_waiting_request_instead_of_hanging() -> None:
    """``workspace/applyEdit`` answered with something that is no ApplyWorkspaceEditResult:
    the action that waits for it stops the stream and answers (it never hangs)."""
    with RawClient.spawn(fake={"reply": REPLY}) as client:
        client.answers["workspace/applyEdit"] = 5
        initialize(client, {"workspace": {"applyEdit": True}})
        uri = open_document(client, "malformed.py")
        action = {
            "uri": uri,
            "version": 1,
            "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}},
            "action": "docstring",
        }
        command = {"command": "codenook.runAction", "arguments": [action]}
        reply = client.request("workspace/executeCommand", command, timeout=5)
        assert reply.get("result", {}).get("status") == "stopped", reply
        assert shutdown_and_exit(client) == 0


def test_the_editor_vanishing_mid_action_ends_the_process() -> None:
    """The input ends (the editor crashed) while an action streams and an applyEdit waits for
    an answer that never comes: the process must end promptly, not spin at shutdown."""
    with RawClient.spawn(fake={"step_s": 0.05, "reply": REPLY * 4}) as client:
        client.auto_answer = False  # the applyEdit is never answered
        initialize(client, {"workspace": {"applyEdit": True}})
        uri = open_document(client, "vanish.py")
        action = {
            "uri": uri,
            "version": 1,
            "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}},
            "action": "docstring",
        }
        client.send_request(
            "workspace/executeCommand", {"command": "codenook.runAction", "arguments": [action]}
        )
        client.wait_for(lambda m: m.get("method") == "workspace/applyEdit", 10, "an applyEdit")
        client.close_input()
        client.wait_exit(8)
        assert STUCK not in client.stderr
