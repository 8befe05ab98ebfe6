"""The editor as an agent task sees it: buffers to read, versioned edits, questions, a transcript.

Every change goes through ``workspace/applyEdit`` so it lands in the editor's buffers
(unsaved, undoable there) and never behind the editor's back. An edit is sent only when the
file still holds exactly the text the tool computed it against: for an open document,
codenook's copy of the buffer, at the version the edit names; for a file that is not open,
its text on disk (the client opens it to apply the edit). Only the changed region is sent,
so the user's cursor and the editor's undo history stay meaningful.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from codenook.agent.changes import FileChange
from codenook.agent.loop import Kind
from codenook.lsp import convert
from codenook.lsp.progress import Progress
from codenook.text.positions import LineIndex
from codenook.uris import path_to_uri, uri_to_path
from codenook.workspace.index.files import read_regular

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

TRANSCRIPT_NOTIFICATION = "codenook/agentTranscript"
APPLY_TIMEOUT_S = 30.0  # a client may ask the user (VS Code does for some edits)
ECHO_TIMEOUT_S = 5.0
POLL_S = 0.05
MAX_READ_BYTES = 64 * 1024 * 1024  # undo and edits compare whole files; never more


def changed_region(before: str, after: str) -> tuple[int, int, str]:
    """The smallest (start, end, replacement) turning ``before`` into ``after``."""
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end_b, end_a = len(before), len(after)
    while end_b > start and end_a > start and before[end_b - 1] == after[end_a - 1]:
        end_b -= 1
        end_a -= 1
    return start, end_b, after[start:end_a]


class EditorPort:
    def __init__(
        self,
        ls: CodenookServer,
        task_id: str,
        progress: Progress,
        cancelled: Callable[[], bool],
    ) -> None:
        self._ls = ls
        self._task_id = task_id
        self._progress = progress
        self._cancelled = cancelled

    # -- reading -----------------------------------------------------------------------------

    def _open(self) -> dict[str, str]:
        """Open documents' URIs by real path: the tools name files by real path, the client
        by whatever path it opened them through (a link, say)."""
        found: dict[str, str] = {}
        for uri in self._ls.app.documents.uris():
            local = uri_to_path(uri)
            if local is not None:
                found[os.path.realpath(local)] = uri
        return found

    def open_uri(self, path: Path) -> str | None:
        return self._open().get(os.path.realpath(path))

    def open_texts(self) -> dict[Path, str]:
        texts: dict[Path, str] = {}
        for real, uri in self._open().items():
            doc = self._ls.app.documents.find(uri)
            if doc is not None and doc.out_of_sync is None:
                texts[Path(real)] = doc.text
        return texts

    def text_of(self, path: Path) -> str | None:
        uri = self.open_uri(path)
        doc = self._ls.app.documents.find(uri) if uri is not None else None
        if doc is None or doc.out_of_sync is not None:
            return None
        return doc.text

    def current_text(self, path: Path) -> str | None:
        """The file as the user has it: the open buffer, else the disk; None if unreadable."""
        text = self.text_of(path)
        if text is not None:
            return text
        try:
            data, _ = read_regular(str(path), MAX_READ_BYTES)
        except OSError:
            return None
        return data.decode("utf-8", "replace")

    # -- telling -----------------------------------------------------------------------------

    def transcript(self, kind: Kind, text: str) -> None:
        self._ls.protocol.notify(
            TRANSCRIPT_NOTIFICATION, {"taskId": self._task_id, "kind": kind, "text": text}
        )

    def step(self, text: str) -> None:
        self._progress.report(text)

    async def ask(self, message: str, choices: Sequence[str]) -> str | None:
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Warning,
            message=message,
            actions=[types.MessageActionItem(title=c) for c in choices],
        )
        asked = asyncio.ensure_future(self._ls.window_show_message_request_async(params))
        while not asked.done():
            if self._cancelled():
                asked.cancel()
                return None
            await asyncio.wait({asked}, timeout=POLL_S)
        try:
            answer = asked.result()
        except (JsonRpcException, asyncio.CancelledError) as exc:
            self._ls.log(f"codenook: window/showMessageRequest failed: {exc}")
            return None
        title = getattr(answer, "title", None)
        return title if isinstance(title, str) else None

    # -- writing -----------------------------------------------------------------------------

    async def apply(self, change: FileChange) -> str | None:
        if change.created:
            return await self._create(change)
        uri = self.open_uri(change.path)
        if uri is not None:
            doc = self._ls.app.documents.find(uri)
            if doc is None or doc.out_of_sync is not None:
                return "the editor's copy of the file is out of sync; read it again"
            if doc.text != change.before:
                return "the file changed since it was read; read it again"
            return await self._edit(uri, doc.version, doc.lines, change)
        current = self.current_text(change.path)
        if current is None:
            return f"cannot read {change.display}"
        if current != change.before:
            return "the file changed on disk since it was read; read it again"
        return await self._edit(path_to_uri(change.path), None, LineIndex(change.before), change)

    async def _edit(
        self, uri: str, version: int | None, lines: LineIndex, change: FileChange
    ) -> str | None:
        assert change.before is not None
        start, end, text = changed_region(change.before, change.after)
        encoding = self._ls.encoding
        edit = types.TextEdit(range=convert.lsp_range(lines, start, end, encoding), new_text=text)
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        problem = await self._send(
            f"codenook agent: edit {change.display}",
            [types.TextDocumentEdit(text_document=identifier, edits=[edit])],
        )
        if problem is not None:
            return problem
        await self._echo(change)
        return None

    async def _create(self, change: FileChange) -> str | None:
        caps = self._ls.client_capabilities.workspace
        edit_caps = caps.workspace_edit if caps is not None else None
        operations = (edit_caps.resource_operations or []) if edit_caps is not None else []
        if types.ResourceOperationKind.Create not in operations:
            return "this editor cannot create files through LSP (no resourceOperations create)"
        if os.path.lexists(change.path):
            return "the file exists now; read it and use edit_file"
        uri = path_to_uri(change.path)
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None)
        start = types.Position(0, 0)
        insert = types.TextEdit(range=types.Range(start, start), new_text=change.after)
        create = types.CreateFile(
            uri=uri, options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False)
        )
        problem = await self._send(
            f"codenook agent: create {change.display}",
            [create, types.TextDocumentEdit(text_document=identifier, edits=[insert])],
        )
        if problem is not None:
            return problem
        await self._echo(change)
        return None

    async def delete(self, path: Path, display: str) -> str | None:
        """Remove a file the task created (for undo)."""
        caps = self._ls.client_capabilities.workspace
        edit_caps = caps.workspace_edit if caps is not None else None
        operations = (edit_caps.resource_operations or []) if edit_caps is not None else []
        if types.ResourceOperationKind.Delete not in operations:
            return "this editor cannot delete files through LSP (no resourceOperations delete)"
        uri = self.open_uri(path) or path_to_uri(path)
        delete = types.DeleteFile(
            uri=uri, options=types.DeleteFileOptions(ignore_if_not_exists=True)
        )
        return await self._send(f"codenook agent: undo creating {display}", [delete])

    async def _send(self, label: str, changes: list[Any]) -> str | None:
        params = types.ApplyWorkspaceEditParams(
            edit=types.WorkspaceEdit(document_changes=changes), label=label
        )
        try:
            result = await asyncio.wait_for(
                self._ls.workspace_apply_edit_async(params), APPLY_TIMEOUT_S
            )
        except (TimeoutError, asyncio.TimeoutError):
            return "the editor did not answer the edit"
        except JsonRpcException as exc:
            return f"the editor refused the edit: {exc}"
        if result is None or getattr(result, "applied", False) is not True:
            reason = getattr(result, "failure_reason", None)
            return f"the editor did not apply the edit{': ' + reason if reason else ''}"
        return None

    async def _echo(self, change: FileChange) -> None:
        """Wait for the editor's copy to show the edit (didOpen or didChange), so the next
        read sees it; a file the client edits without opening it has no copy here. The client
        said the edit was applied, so it counts as made (and is undone with the task) even
        when the user typed meanwhile and the copy never equals ``change.after``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ECHO_TIMEOUT_S
        while loop.time() < deadline:
            text = self.text_of(change.path)
            if text is not None and same_text(text, change.after, change.created):
                return None
            uri = self.open_uri(change.path)
            if uri is None and loop.time() > deadline - ECHO_TIMEOUT_S + 1.0:
                return None  # applied by the client without opening it here
            await asyncio.sleep(POLL_S)
        self._ls.log(f"codenook: agent edit of {change.display} applied; the buffer differs since")


def same_text(text: str, expected: str, created: bool) -> bool:
    """Whether an editor's copy holds ``expected``. A file created through LSP starts as
    whatever the editor calls empty (Neovim's empty buffer is one empty line, "\n"), so for a
    created file a difference in trailing newlines is not a difference."""
    if text == expected:
        return True
    return created and text.rstrip("\r\n") == expected.rstrip("\r\n")
