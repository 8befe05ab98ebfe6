"""The one owner of every request's answer.

Every handler goes through ``request`` or ``notification``. The wrapper, not the handler,
decides what each kind of failure becomes, so every feature fails the same way:

- superseded, cancelled by the engine, model still loading: the feature's empty answer (VS
  Code shows an inline-completion error to the user; an empty answer is what "nothing to
  offer" means);
- an impossible position or a document the server does not know: the empty answer, logged;
- an engine error: one message to the user (once per text), then the empty answer — or,
  for commands, a RequestFailed error, since a command that did nothing must say so;
- ``$/cancelRequest``: the handler's task is cancelled at its next ``await`` (for commands
  too, whose coroutine pygls would otherwise leave running), and pygls answers -32800;
- anything else: a traceback in the log and a JSON-RPC error naming the feature.

A handler either returns or raises, and pygls answers each request exactly once with that.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pygls.exceptions import JsonRpcException

from codenook.assist.actions import ActionError
from codenook.completion.service import NotReady
from codenook.engine.protocol import EngineError
from codenook.engine.scheduler import Cancelled, Superseded
from codenook.text.documents import DocumentError
from codenook.text.positions import PositionError

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[..., Any]


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid but could not be carried out."""

    CODE = -32803
    MESSAGE = "Request Failed"


class _Fail:
    """Marks a request whose failures are errors, not an empty answer (commands)."""


FAIL = _Fail()


def _answer_failure(ls: CodenookServer, feature: str, empty: Any, exc: BaseException) -> Any:
    """What a failed handler answers; raises when the answer is an error."""
    if isinstance(exc, Superseded | Cancelled | NotReady):
        if isinstance(empty, _Fail):
            raise RequestFailed(f"codenook: {feature} did not run: {exc or 'cancelled'}") from exc
        return empty
    if isinstance(exc, PositionError | DocumentError | ActionError):
        ls.log(f"{feature}: {exc}")
        if isinstance(empty, _Fail):
            raise RequestFailed(f"codenook: {exc}") from exc
        return empty
    if isinstance(exc, EngineError):
        if isinstance(empty, _Fail):
            raise RequestFailed(f"codenook: {exc}") from exc
        if ls.app.host.error is None:  # a load failure was told once already
            ls.problem(f"{feature} failed: {exc}", f"{feature}-failed", warning=True)
        return empty
    ls.log(f"{feature}: internal error\n{''.join(traceback.format_exception(exc))}")
    log.error("%s failed", feature, exc_info=exc)
    raise RequestFailed(f"codenook: internal error in {feature}: {exc}") from exc


def _cancel_with_request(ls: CodenookServer) -> None:
    """Tie the current task to the request's own future, which ``$/cancelRequest`` cancels.

    pygls runs a command's coroutine as a second task and cancels only the outer future, so
    without this a cancelled command would keep streaming edits after the client was told it
    had stopped.
    """
    task = asyncio.current_task()
    futures = getattr(ls.protocol, "_request_futures", None)
    outer = futures.get(ls.protocol.msg_id) if isinstance(futures, dict) else None
    if task is None or outer is None or outer is task:
        return
    outer.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)


def request(feature: str, empty: Any) -> Callable[[Handler], Handler]:
    """Wrap an LSP request handler ``(ls, params)``; ``empty`` is its answer when there is
    nothing to offer, or ``FAIL`` when failures must be errors. A callable ``empty`` is
    called for a fresh value each time."""

    def fresh() -> Any:
        return empty() if callable(empty) and not isinstance(empty, _Fail) else empty

    def wrap(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(ls: CodenookServer, *args: Any) -> Any:
                _cancel_with_request(ls)
                try:
                    return await handler(ls, *args)
                except (asyncio.CancelledError, JsonRpcException):
                    raise
                except Exception as exc:
                    return _answer_failure(ls, feature, fresh(), exc)

            return run_async

        @functools.wraps(handler)
        def run(ls: CodenookServer, *args: Any) -> Any:
            try:
                return handler(ls, *args)
            except JsonRpcException:
                raise
            except Exception as exc:
                return _answer_failure(ls, feature, fresh(), exc)

        return run

    return wrap


def notification(name: str) -> Callable[[Handler], Handler]:
    """Wrap a notification handler: a failure is logged with its traceback, never raised
    (there is nobody to answer, and pygls would show it to the user as a crash)."""

    def wrap(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(ls: CodenookServer, params: Any) -> None:
                try:
                    await handler(ls, params)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    ls.log(f"{name}: {''.join(traceback.format_exception(exc))}")

            return run_async

        @functools.wraps(handler)
        def run(ls: CodenookServer, params: Any) -> None:
            try:
                handler(ls, params)
            except Exception as exc:
                ls.log(f"{name}: {''.join(traceback.format_exception(exc))}")

        return run

    return wrap
