"""JSON-RPC and the LSP lifecycle, strictly: every request gets exactly one answer.

pygls decodes a message and structures its params in one step; when either fails it shows
the user a pop-up and answers nothing. It also answers requests before ``initialize``, drops
requests after ``shutdown`` without an answer, and exits with 0 on ``exit`` without
``shutdown``. ``RpcProtocol`` takes each framed body from the transport (``lsp/transport``)
and answers, before any handler runs:

- a body that is not UTF-8 or not JSON: ParseError (-32700), id null;
- a batch (LSP has none): InvalidRequest (-32600) for each request in it, or once, id null;
- a message that is not a valid request, notification or response: InvalidRequest, with the
  request's id when it has a usable one, else null;
- params that are not what the method takes (a negative or too-large position, missing
  params, ``arguments: 5``): InvalidParams (-32602) naming the member; a notification with
  bad params is logged and dropped;
- a request before ``initialize``: ServerNotInitialized (-32002); a second ``initialize`` and
  any request after ``shutdown``: InvalidRequest. Notifications then are dropped, but ``exit``.

``exit`` ends the session with 0 after ``shutdown`` and 1 otherwise (the transport stops).
``shutdown`` cancels every request in flight; each is answered RequestCancelled (-32800).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

import cattrs
from cattrs.v import format_exception
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
)
from pygls.protocol.language_server import lsp_method

if TYPE_CHECKING:
    from pygls.protocol.json_rpc import MsgId

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002

Phase = Literal["new", "running", "shut down", "exited"]
BATCH = "JSON-RPC batches are not part of LSP; send one message at a time"
_MEMBERS = ("jsonrpc", "id", "method", "params")


def say(message: str) -> None:
    """A line on stderr (the editor's log of the server): for problems with the stream
    itself, which cannot be reported over it."""
    print(f"codenook: {message}", file=sys.stderr, flush=True)


def usable_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _invalid(data: Any) -> str | None:
    """Why ``data`` is not a JSON-RPC 2.0 request, notification or response (None if it is)."""
    if not isinstance(data, dict):
        return "a message must be a JSON object"
    if data.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if "method" in data:
        if not isinstance(data["method"], str):
            return "'method' must be a string"
        if "id" in data and not usable_id(data["id"]):
            return "'id' must be a string or an integer"
        return None
    if "id" in data and ("result" in data or "error" in data):
        if data["id"] is not None and not usable_id(data["id"]):
            return "'id' must be a string or an integer"
        return None
    return "a message needs a 'method', or an 'id' with a 'result' or an 'error'"


def describe(exc: BaseException) -> str:
    """What cattrs found wrong, with where: '$.params.position: ... was -1'."""

    def formatted(error: BaseException, kind: type | None) -> str:
        text = format_exception(error, kind)
        if isinstance(error, ValueError) and str(error):
            return f"{text} ({error})"
        return text

    try:
        found = cattrs.transform_error(exc, format_exception=formatted)
    except Exception:
        found = [str(exc)]
    text = "; ".join(found[:3]) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


class RpcProtocol(LanguageServerProtocol):
    def __init__(self, server: Any, converter: cattrs.Converter) -> None:
        super().__init__(server, converter)
        self.phase: Phase = "new"
        self.exit_code: int | None = None
        self.ended_at: float | None = None  # time.monotonic() of exit or the end of input
        self.on_exit: Callable[[int], None] | None = None

    # -- one framed body ------------------------------------------------------------------------

    def receive(self, body: bytes) -> None:
        """Decode one framed message and answer or dispatch it."""
        if self.phase == "exited":
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.send_error(None, PARSE_ERROR, f"Parse error: not UTF-8 (byte {exc.start})")
            return
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.send_error(None, PARSE_ERROR, f"Parse error: {exc}")
            return
        if isinstance(data, list):
            self._batch(data)
        else:
            self.receive_object(data)

    def receive_object(self, data: Any) -> None:
        problem = _invalid(data)
        if problem is not None:
            msg_id = data.get("id") if isinstance(data, dict) else None
            msg_id = msg_id if usable_id(msg_id) else None
            self.send_error(msg_id, INVALID_REQUEST, f"Invalid request: {problem}")
            return
        if "method" not in data:
            self._response(data)
            return
        method: str = data["method"]
        is_request = "id" in data
        refused = self._refused(method, is_request)
        if refused is not None:
            if is_request:
                self.send_error(data["id"], *refused)
            else:
                say(f"ignored the notification {method}: {refused[1]}")
            return
        if method == types.EXIT:
            if is_request:
                self._send_data({"jsonrpc": "2.0", "id": data["id"], "result": None})
            self._exit()
            return
        message = self._structure(data, method, is_request)
        if message is None:
            return
        context = contextvars.copy_context()
        if is_request:
            if method == types.INITIALIZE:
                self.phase = "running"
            context.run(self._handle_request, message.id, method, message.params)
        else:
            context.run(self._handle_notification, method, message.params)

    def send_error(self, msg_id: MsgId | None, code: int, message: str) -> None:
        """An error answer; ``msg_id`` None is sent as null (lsprotocol would leave it out)."""
        error = {"code": code, "message": message}
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})

    # -- the lifecycle --------------------------------------------------------------------------

    def _refused(self, method: str, is_request: bool) -> tuple[int, str] | None:
        if method == types.EXIT:
            return None
        if method == types.INITIALIZE and not is_request:
            return INVALID_REQUEST, "initialize must be a request"
        if self.phase == "new" and method != types.INITIALIZE:
            return SERVER_NOT_INITIALIZED, f"not initialized: send initialize before {method}"
        if self.phase == "shut down":
            return INVALID_REQUEST, f"the server has shut down: {method} refused, only exit is left"
        if method == types.INITIALIZE and self.phase != "new":
            return INVALID_REQUEST, "initialize was received already; it may be sent only once"
        return None

    def _exit(self) -> None:
        self.exit_code = 0 if self.phase == "shut down" else 1
        self.phase, self.ended_at = "exited", time.monotonic()
        if self.on_exit is not None:
            self.on_exit(self.exit_code)

    def end_of_input(self) -> int:
        """The client went away without ``exit``: the exit status that stands for."""
        if self.exit_code is None:
            self.exit_code = 0 if self.phase in ("new", "shut down") else 1
            if self.phase == "running":
                say("the client closed the connection without shutdown and exit")
            self.phase, self.ended_at = "exited", time.monotonic()
        return self.exit_code

    def handler_tasks(self) -> set[asyncio.Future[Any]]:
        """The handlers still running on the event loop (requests and notifications)."""
        futures: list[Any] = list(self._request_futures.values())
        return {f for f in futures if isinstance(f, asyncio.Future) and not f.done()}

    def cancel_requests(self, keep: MsgId | None = None) -> None:
        """Cancel every request in flight but ``keep``: each is answered RequestCancelled.
        Iterates over a copy: a cancelled future's callback removes it from the table."""
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != keep and not future.done():
                future.cancel()

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        current = self.msg_id
        self.phase = "shut down"
        self._shutdown = True
        if (handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield handler, args, None
        self.cancel_requests(keep=current)
        return None

    # -- structuring ----------------------------------------------------------------------------

    def _structure(self, data: dict[str, Any], method: str, is_request: bool) -> Any:
        """The typed message, or None when its params are invalid (answered or logged)."""
        clean = {key: data[key] for key in _MEMBERS if key in data}
        params = clean.get("params")
        kind = self.get_message_type(method)
        if kind is None:
            kind = JsonRPCRequestMessage if is_request else JsonRPCNotification
            clean.setdefault("params", None)
        try:
            if params is not None and not isinstance(params, dict | list):
                raise ValueError("params must be an object or an array")
            return self._converter.structure(clean, kind)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, ValueError) else describe(exc)
            if is_request:
                message = f"Invalid params for {method}: {detail}"
                self.send_error(data["id"], INVALID_PARAMS, message)
            else:
                say(f"ignored the notification {method}: invalid params: {detail}")
            return None

    def _response(self, data: dict[str, Any]) -> None:
        msg_id = data["id"]
        if msg_id is None:
            say(f"the client could not use a message of ours: {data.get('error')}")
            return
        future = self._request_futures.get(msg_id)
        if future is None or future.done():  # done: cancelled (shutdown, a timeout) meanwhile
            self._request_futures.pop(msg_id, None)
            self._result_types.pop(msg_id, None)
            say(f"ignored an answer to {msg_id!r}, which was never asked or was cancelled")
            return
        clean = {key: data[key] for key in ("jsonrpc", "id", "result", "error") if key in data}
        context = contextvars.copy_context()
        try:
            if "error" in clean:
                clean.pop("result", None)
                error = self._converter.structure(clean, types.ResponseErrorMessage).error
                context.run(self._handle_response, msg_id, None, error)
                return
            kind = self._result_types.pop(msg_id, None) or JsonRPCResponseMessage
            result = self._converter.structure(clean, kind).result
        except Exception as exc:
            # The request waiting for this answer must end, not hang: it fails.
            self._request_futures.pop(msg_id, None)
            detail = describe(exc)
            say(f"the client's answer to {msg_id!r} is not valid: {detail}")
            if not future.done():
                future.set_exception(
                    JsonRpcInternalError(f"the client's answer is not valid: {detail}")
                )
            return
        context.run(self._handle_response, msg_id, result)

    # -- batches --------------------------------------------------------------------------------

    def _batch(self, items: list[Any]) -> None:
        ids = [
            item["id"]
            for item in items
            if isinstance(item, dict) and "method" in item and usable_id(item.get("id"))
        ]
        for msg_id in ids or [None]:
            self.send_error(msg_id, INVALID_REQUEST, f"Invalid request: {BATCH}")
