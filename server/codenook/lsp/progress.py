"""Work-done progress that always ends, whoever ends it and whenever.

A progress the server starts needs a round trip (``window/workDoneProgress/create``) before
it may begin, and the work it reports on (a model load, an index build) may finish during
that round trip; a client left with an unended progress shows "indexing…" forever. One class
covers both uses: ``async with Progress(...)`` around a request's work, and ``start``/``end``
driven by events for background work.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

State = Literal["new", "creating", "open", "ended"]


class Progress:
    def __init__(self, ls: CodenookServer, title: str, *, cancellable: bool = False) -> None:
        self._ls = ls
        self.title = title
        self.cancellable = cancellable
        self.state: State = "new"
        self._token: str | None = None
        self._message: str | None = None
        self._percentage: int | None = None
        self._end_message: str | None = None
        self._ending = False  # end() came before the progress could begin
        self._task: asyncio.Future[None] | None = None

    @property
    def supported(self) -> bool:
        window = self._ls.client_capabilities.window
        return window is not None and bool(window.work_done_progress)

    async def begin(self, message: str | None = None, percentage: int | None = None) -> None:
        """Create the token and begin; a client without progress support gets nothing."""
        if self.state != "new":
            return
        self._message = message if message is not None else self._message
        self._percentage = percentage if percentage is not None else self._percentage
        if not self.supported:
            self.state = "ended"
            return
        self.state = "creating"
        token = f"codenook-{uuid.uuid4()}"
        try:
            await self._ls.work_done_progress.create_async(token)
        except Exception:
            self.state = "ended"  # the client refused: work goes on without a progress bar
            return
        self._token, self.state = token, "open"
        self._ls.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=self.title,
                cancellable=self.cancellable,
                message=self._message,
                percentage=self._percentage,
            ),
        )
        if self._ending:  # the work finished while the client was creating the token
            self.end(self._end_message)

    def start(self, message: str | None = None, percentage: int | None = None) -> None:
        """Begin in the background (from a synchronous event handler)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self.begin(message, percentage))

    def report(self, message: str | None = None, percentage: int | None = None) -> None:
        self._message, self._percentage = message, percentage
        if self.state == "open" and self._token is not None:
            self._ls.work_done_progress.report(
                self._token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, message: str | None = None) -> None:
        """End once; before the token exists, the end is sent as soon as it does."""
        if self.state == "open" and self._token is not None:
            self.state = "ended"
            self._ls.work_done_progress.end(self._token, types.WorkDoneProgressEnd(message=message))
        elif self.state in ("new", "creating"):
            # Begin-then-end still goes out once the token exists, so a client that saw the
            # create request never keeps a progress that nothing will end.
            self._ending, self._end_message = True, message
            if self.state == "new" and self._task is None:
                self.state = "ended"

    @property
    def cancelled(self) -> bool:
        """Whether the user pressed the progress's cancel button."""
        if self._token is None:
            return False
        future = self._ls.work_done_progress.tokens.get(self._token)
        return future is not None and future.cancelled()

    async def __aenter__(self) -> Progress:
        await self.begin(self._message)
        return self

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self._end_message is None:
            self._end_message = "cancelled" if kind is asyncio.CancelledError else "failed"
        self.end(self._end_message)

    def finish_with(self, message: str) -> None:
        """The message the progress ends with when the ``async with`` block is left."""
        self._end_message = message
