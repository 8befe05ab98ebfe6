"""``codenook serve --tcp``: one client, and only the one holding the token.

The token comes from ``--token-file`` (read, or written 0600 when the file is new), from
``CODENOOK_TOKEN``, or is generated and printed on stderr; the client sends it as
``initializationOptions.token`` in ``initialize``, the first message on the connection.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rawclient import SERVE_FAKE, RawClient, Timeout, complete, open_document, wait_state

TOKEN = "s3cret-token-for-tests"
INVALID_REQUEST = -32600
CODENOOK_SERVE = [sys.executable, "-m", "codenook", "serve"]


class TcpServer:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.stdio = RawClient.spawn(argv, env=env, fake={"reply": "abc"})
        self.stdio.auto_answer = False
        deadline = time.monotonic() + 10
        while not (found := re.search(r"listening on ([\d.]+):(\d+)\D", self.stdio.stderr)):
            assert time.monotonic() < deadline, self.stdio.stderr
            time.sleep(0.02)
        self.host, self.port = found.group(1), int(found.group(2))

    def connect(self) -> RawClient:
        return RawClient.connect(self.host, self.port)

    def stderr_after(self, start: int, text: str) -> str:
        return self.stdio.wait_stderr(text, start=start)


@pytest.fixture
def server() -> Iterator[TcpServer]:
    tcp = TcpServer([*SERVE_FAKE, "--tcp", "127.0.0.1:0"], env={"CODENOOK_TOKEN": TOKEN})
    yield tcp
    tcp.stdio.kill()


def _initialize(client: RawClient, token: Any = TOKEN, *, omit: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"completion": {"speculative": False}, "index": {"enabled": False}}
    if not omit:
        options["token"] = token
    return client.request(
        "initialize",
        {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": options},
        timeout=5,
    )


def _closed(client: RawClient, timeout: float = 5.0) -> bool:
    return client.eof.wait(timeout)


def test_the_right_token_works_and_exit_ends_the_server(server: TcpServer) -> None:
    with server.connect() as client:
        reply = _initialize(client)
        assert "capabilities" in reply["result"], reply
        client.notify("initialized", {})
        wait_state(client, "idle")
        uri = open_document(client, "tcp.py")
        assert complete(client, uri)["result"]["items"][0]["insertText"] == "abc"
        assert TOKEN not in server.stdio.stderr
        assert "unknown setting" not in server.stdio.stderr
        assert client.request("shutdown", omit_params=True)["result"] is None
        client.notify("exit")
        assert server.stdio.wait_exit(5) == 0


@pytest.mark.parametrize("token", ["wrong", "", None, 12345, ["s3cret-token-for-tests"]])
def test_a_wrong_token_is_refused_and_the_connection_closed(server: TcpServer, token: Any) -> None:
    start = len(server.stdio.stderr)
    with server.connect() as intruder:
        reply = _initialize(intruder, token)
        assert reply["error"]["code"] == INVALID_REQUEST
        assert "token" in reply["error"]["message"]
        assert _closed(intruder)
    server.stderr_after(start, "refused")
    with server.connect() as client:  # the real client still gets in
        assert "result" in _initialize(client)


def test_a_missing_token_is_refused(server: TcpServer) -> None:
    with server.connect() as intruder:
        assert _initialize(intruder, omit=True)["error"]["code"] == INVALID_REQUEST
        assert _closed(intruder)


@pytest.mark.parametrize(
    "first",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "codenook/stats", "params": {}},
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {}},
        {"jsonrpc": "2.0", "method": "exit"},
    ],
)
def test_anything_but_initialize_first_is_refused(server: TcpServer, first: Any) -> None:
    with server.connect() as intruder:
        intruder.send(first)
        assert _closed(intruder)
        assert all("result" not in m for m in intruder.messages)
    assert server.stdio.process is not None and server.stdio.process.poll() is None
    with server.connect() as client:
        assert "result" in _initialize(client)


def test_garbage_first_is_refused(server: TcpServer) -> None:
    with server.connect() as intruder:
        intruder.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _closed(intruder)
    with server.connect() as client:
        assert "result" in _initialize(client)


def test_a_second_connection_is_refused_and_reads_nothing(server: TcpServer) -> None:
    with server.connect() as client:
        assert "result" in _initialize(client)
        client.notify("initialized", {})
        uri = open_document(client, "secret.py", "password = 'hunter2'\n")
        start = len(server.stdio.stderr)
        with server.connect() as second:
            assert _closed(second)
            assert second.messages == []
            with pytest.raises((Timeout, OSError)):
                _initialize(second)
        server.stderr_after(start, "refused")
        # The session is untouched: its output still goes to the first client.
        reply = client.request("codenook/stats", {})
        assert "result" in reply
        assert complete(client, uri, 0, 0)["result"] is not None


def test_an_idle_connection_does_not_block_the_real_client(server: TcpServer) -> None:
    idle = socket.create_connection((server.host, server.port))
    try:
        with server.connect() as client:
            assert "result" in _initialize(client)
    finally:
        idle.close()


def test_token_file_is_written_0600_and_used(tmp_path: Path) -> None:
    path = tmp_path / "token"
    tcp = TcpServer([*CODENOOK_SERVE, "--tcp", "127.0.0.1:0", "--token-file", str(path)])
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        assert len(token) >= 32
        assert token not in tcp.stdio.stderr  # the file is the channel, not the log
        with tcp.connect() as intruder:
            assert _initialize(intruder, "nope")["error"]["code"] == INVALID_REQUEST
        with tcp.connect() as client:
            assert "result" in _initialize(client, token)
            assert client.request("shutdown", omit_params=True)["result"] is None
            client.notify("exit")
        assert tcp.stdio.wait_exit(5) == 0
    finally:
        tcp.stdio.kill()


def test_an_existing_token_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    tcp = TcpServer([*SERVE_FAKE, "--tcp", "127.0.0.1:0", "--token-file", str(path)])
    try:
        with tcp.connect() as client:
            assert "result" in _initialize(client)
    finally:
        tcp.stdio.kill()


def test_a_generated_token_is_printed_on_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CODENOOK_TOKEN"}
    proc = subprocess.Popen(
        [*SERVE_FAKE, "--tcp", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = ""
        deadline = time.monotonic() + 10
        while "listening on" not in lines and time.monotonic() < deadline:
            lines += proc.stderr.readline()
        found = re.search(r"listening on ([\d.]+):(\d+).*?token ([\w-]+)", lines, re.S)
        assert found, lines
        with RawClient.connect(found.group(1), int(found.group(2))) as client:
            assert "result" in _initialize(client, found.group(3))
    finally:
        proc.kill()
        proc.wait(5)
