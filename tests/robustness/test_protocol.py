"""Hostile input at the JSON-RPC layer: every request gets exactly one answer with the right
code, nothing is shown to the user as a pop-up, and the server keeps completing afterwards.

The server is ``serve_fake.py`` (the real LSP layer and ``codenook serve``'s transport with a
scripted engine), driven by a raw-bytes client so that the input can be anything.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from rawclient import ROOT, RawClient, complete, frame, initialize, inline_params, open_document

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
URI = (ROOT / "protocol.py").as_uri()


@pytest.fixture(scope="module")
def server() -> Iterator[RawClient]:
    with RawClient.spawn(fake={"reply": "abc"}) as client:
        initialize(client)
        assert open_document(client, "protocol.py") == URI
        yield client


@pytest.fixture
def client(server: RawClient) -> Iterator[RawClient]:
    """The shared server; after each test it must still complete, and never have popped up."""
    seen = len(server.messages)
    yield server
    reply = complete(server, URI)
    assert reply["result"]["items"][0]["insertText"] == "abc", reply
    popups = [m for m in server.messages[seen:] if m.get("method") == "window/showMessage"]
    assert popups == []


def _error(reply: dict[str, Any], code: int, *words: str) -> str:
    assert "result" not in reply, reply
    assert reply["error"]["code"] == code, reply
    message = str(reply["error"]["message"])
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    return message


def _request(client: RawClient, method: str, params: Any, **extra: Any) -> dict[str, Any]:
    msg_id = client.next_id()
    client.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params, **extra})
    reply = client.read_until(msg_id, 5)
    assert len(client.responses(msg_id)) == 1
    return reply


def _null_id_errors(client: RawClient) -> list[dict[str, Any]]:
    return [m for m in client.messages if "error" in m and m.get("id") is None]


def _send_expecting_null_id(client: RawClient, data: bytes, code: int, *words: str) -> None:
    start = len(client.messages)
    client.send_raw(data)
    reply = client.wait_for(
        lambda m: "error" in m and m.get("id") is None, 5, "an error with a null id", start
    )
    _error(reply, code, *words)


# -- invalid params ----------------------------------------------------------------------------


@pytest.mark.parametrize("line", [-1, 2**31, 2**53])
def test_impossible_position_is_invalid_params(client: RawClient, line: int) -> None:
    params = inline_params(URI, line, 0)
    _error(_request(client, "textDocument/inlineCompletion", params), INVALID_PARAMS, "line")


def test_negative_character_is_invalid_params(client: RawClient) -> None:
    params = {"textDocument": {"uri": URI}, "position": {"line": 0, "character": -5}}
    _error(_request(client, "textDocument/hover", params), INVALID_PARAMS, "character")


def test_missing_params_is_invalid_params(client: RawClient) -> None:
    msg_id = client.next_id()
    client.send({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover"})
    _error(client.read_until(msg_id, 5), INVALID_PARAMS, "params")


def test_null_params_is_invalid_params(client: RawClient) -> None:
    _error(_request(client, "textDocument/inlineCompletion", None), INVALID_PARAMS, "params")


def test_scalar_params_is_invalid_params(client: RawClient) -> None:
    _error(_request(client, "codenook/stats", 5), INVALID_PARAMS, "params")


def test_command_arguments_not_a_list_is_invalid_params(client: RawClient) -> None:
    params = {"command": "codenook.runAction", "arguments": 5}
    _error(_request(client, "workspace/executeCommand", params), INVALID_PARAMS, "arguments")


def test_unknown_command_is_invalid_params(client: RawClient) -> None:
    params = {"command": "codenook.nothing", "arguments": []}
    _error(_request(client, "workspace/executeCommand", params), INVALID_PARAMS, "nothing")


def test_unknown_method_is_method_not_found(client: RawClient) -> None:
    _error(_request(client, "codenook/nothing", {}), METHOD_NOT_FOUND, "codenook/nothing")


def test_invalid_notification_params_are_logged_not_shown(client: RawClient) -> None:
    client.notify("textDocument/didOpen", {"textDocument": 5})
    client.wait_stderr("textDocument/didOpen")


# -- invalid messages --------------------------------------------------------------------------


def test_invalid_json_is_a_parse_error(client: RawClient) -> None:
    _send_expecting_null_id(client, frame('{"jsonrpc": "2.0", "id": 1, '), PARSE_ERROR, "parse")


def test_non_utf8_body_is_a_parse_error(client: RawClient) -> None:
    body = b'{"jsonrpc": "2.0", "id": 7, "method": "codenook/stats", "params": {"a": "\xff"}}'
    _send_expecting_null_id(client, frame(body), PARSE_ERROR, "utf-8")


def test_utf16_body_is_a_parse_error(client: RawClient) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "codenook/stats"}).encode("utf-16")
    _send_expecting_null_id(client, frame(body), PARSE_ERROR, "utf-8")


def test_batch_answers_each_request_with_invalid_request(client: RawClient) -> None:
    first, second = client.next_id(), client.next_id()
    client.send(
        [
            {"jsonrpc": "2.0", "id": first, "method": "codenook/stats", "params": {}},
            {"jsonrpc": "2.0", "method": "initialized", "params": {}},
            {"jsonrpc": "2.0", "id": second, "method": "codenook/stats", "params": {}},
        ]
    )
    for msg_id in (first, second):
        _error(client.read_until(msg_id, 5), INVALID_REQUEST, "batch")
        assert len(client.responses(msg_id)) == 1


def test_empty_batch_is_one_invalid_request(client: RawClient) -> None:
    _send_expecting_null_id(client, frame("[]"), INVALID_REQUEST, "batch")


@pytest.mark.parametrize("value", ["42", '"text"', "null", "true"])
def test_a_message_that_is_not_an_object_is_an_invalid_request(
    client: RawClient, value: str
) -> None:
    _send_expecting_null_id(client, frame(value), INVALID_REQUEST, "object")


def test_wrong_jsonrpc_version_is_an_invalid_request(client: RawClient) -> None:
    msg_id = client.next_id()
    client.send({"jsonrpc": "1.0", "id": msg_id, "method": "codenook/stats", "params": {}})
    _error(client.read_until(msg_id, 5), INVALID_REQUEST, "jsonrpc")
    client.send({"id": msg_id + 1000, "method": "codenook/stats", "params": {}})
    _error(client.read_until(msg_id + 1000, 5), INVALID_REQUEST, "jsonrpc")


def test_method_that_is_not_a_string_is_an_invalid_request(client: RawClient) -> None:
    _error(_request(client, 5, {}), INVALID_REQUEST, "method")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_id", [1.5, {"a": 1}, [1], True, None])
def test_unusable_id_is_an_invalid_request_with_a_null_id(client: RawClient, bad_id: Any) -> None:
    message = {"jsonrpc": "2.0", "id": bad_id, "method": "codenook/stats", "params": {}}
    _send_expecting_null_id(client, frame(json.dumps(message)), INVALID_REQUEST, "id")


def test_neither_request_nor_response_is_an_invalid_request(client: RawClient) -> None:
    msg_id = client.next_id()
    client.send({"jsonrpc": "2.0", "id": msg_id})
    _error(client.read_until(msg_id, 5), INVALID_REQUEST, "method")
    _send_expecting_null_id(client, frame('{"jsonrpc": "2.0"}'), INVALID_REQUEST, "method")


def test_string_ids_and_extra_members_are_fine(client: RawClient) -> None:
    client.send(
        {"jsonrpc": "2.0", "id": "s-1", "method": "codenook/stats", "params": {}, "extra": 1}
    )
    assert client.read_until("s-1", 5)["result"]["state"] == "idle"


def test_unexpected_response_is_ignored(client: RawClient) -> None:
    client.send({"jsonrpc": "2.0", "id": "never-asked", "result": {"x": 1}})
    client.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "x"}})


# -- framing ------------------------------------------------------------------------------------


def _stats_body(msg_id: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "codenook/stats", "params": {}})


@pytest.mark.parametrize(
    "header", ["content-length", "CONTENT-LENGTH", "Content-length", "Content-Length "]
)
def test_header_names_are_case_insensitive(client: RawClient, header: str) -> None:
    msg_id = client.next_id()
    client.send_raw(frame(_stats_body(msg_id), header=header))
    assert "result" in client.read_until(msg_id, 5)


def test_content_type_and_bare_newlines_are_accepted(client: RawClient) -> None:
    first, second = client.next_id(), client.next_id()
    body = _stats_body(first).encode()
    client.send_raw(
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
        + f"Content-Length:{len(body)}\r\n\r\n".encode()
        + body
    )
    body = _stats_body(second).encode()
    client.send_raw(f"Content-Length: {len(body)}\n\n".encode() + body)
    assert "result" in client.read_until(first, 5)
    assert "result" in client.read_until(second, 5)


@pytest.mark.parametrize(
    "garbage",
    [
        b"hello\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"Content-Lenght: 40\r\n\r\n" + b'{"jsonrpc": "2.0", "method": "x"}',
        b"Content-Length: abc\r\n\r\n{}",
        b"Content-Length: -5\r\n\r\n{}",
        b"Content-Length: 99999999999999999999\r\n\r\n{}",
        b"Content-Type: text/plain\r\n\r\n{}",
        b"\x00\xff\xfe binary garbage without a newline " * 20,
    ],
)
def test_garbage_is_logged_and_the_next_message_is_answered(
    client: RawClient, garbage: bytes
) -> None:
    start = len(client.stderr)
    msg_id = client.next_id()
    client.send_raw(garbage + frame(_stats_body(msg_id)))
    assert "result" in client.read_until(msg_id, 5)
    client.wait_stderr("codenook: ", start=start)


def test_short_content_length_is_a_parse_error_then_resynchronises(client: RawClient) -> None:
    msg_id = client.next_id()
    body = _stats_body(msg_id).encode()
    before = len(_null_id_errors(client))
    client.send_raw(f"Content-Length: {len(body) - 10}\r\n\r\n".encode() + body)
    follow = client.next_id()
    client.send_raw(frame(_stats_body(follow)))
    assert "result" in client.read_until(follow, 5)
    assert len(_null_id_errors(client)) == before + 1
    assert _null_id_errors(client)[-1]["error"]["code"] == PARSE_ERROR


def test_a_message_split_into_single_bytes_is_answered(client: RawClient) -> None:
    msg_id = client.next_id()
    for byte in frame(_stats_body(msg_id)):
        client.send_raw(bytes([byte]))
    assert "result" in client.read_until(msg_id, 5)


def test_many_messages_in_one_write_are_all_answered(client: RawClient) -> None:
    ids = [client.next_id() for _ in range(20)]
    client.send_raw(b"".join(frame(_stats_body(i)) for i in ids))
    for msg_id in ids:
        assert "result" in client.read_until(msg_id, 5)


# -- a random sequence --------------------------------------------------------------------------


def test_random_bad_and_good_messages_each_get_one_answer(client: RawClient) -> None:
    """A seeded mix of the cases above: every request with a usable id gets exactly one
    answer, with the code its case calls for."""
    rng = random.Random(20240611)
    cases: list[tuple[str, Any, int | None]] = [
        ("codenook/stats", {}, None),
        ("textDocument/inlineCompletion", inline_params(URI, 4, 9), None),
        ("textDocument/inlineCompletion", inline_params(URI, -3, 0), INVALID_PARAMS),
        ("textDocument/hover", None, INVALID_PARAMS),
        (
            "workspace/executeCommand",
            {"command": "codenook.runAction", "arguments": 5},
            INVALID_PARAMS,
        ),
        ("initialize", {"processId": None, "rootUri": None, "capabilities": {}}, INVALID_REQUEST),
        ("codenook/unknown", {}, METHOD_NOT_FOUND),
    ]
    expected: dict[int, int | None] = {}
    for _ in range(60):
        roll = rng.random()
        if roll < 0.15:
            client.send_raw(rng.choice([b"junk\r\n", frame("{oops"), frame(b"\xc3\x28"), b"\r\n"]))
            continue
        method, params, code = rng.choice(cases)
        msg_id = client.next_id()
        expected[msg_id] = code
        header = rng.choice(["Content-Length", "content-length"])
        body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        client.send_raw(frame(body, header=header))
    for msg_id, code in expected.items():
        reply = client.read_until(msg_id, 10)
        if code is None:
            assert "result" in reply, reply
        else:
            assert reply["error"]["code"] == code, reply
    for msg_id in expected:
        assert len(client.responses(msg_id)) == 1, msg_id
