"""Code actions: offered at once, run by ``codenook.runAction``, which streams the model's
replacement into the buffer through versioned ``workspace/applyEdit``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified, JsonRpcException

from codenook.assist.actions import KINDS, reindent, validate
from codenook.assist.service import ActionPlan
from codenook.assist.streaming import Edit, EditStream, run_stream
from codenook.lsp import convert
from codenook.lsp.convert import ActionArgs
from codenook.lsp.dispatch import FAIL, request
from codenook.lsp.progress import Progress
from codenook.text.documents import Snapshot
from codenook.uris import display_path

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

RUN_ACTION = "codenook.runAction"
EDIT_ECHO_TIMEOUT_S = 5.0  # how long an applied edit may take to come back as didChange
OFFERED = ("rewrite", "extract", "docstring", "annotate", "instruct")
ACTION_KINDS = [
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.RefactorExtract,
]


def register(server: CodenookServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=ACTION_KINDS)
    )
    @request("codeAction", empty=list)
    def code_action(ls: CodenookServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        """Offer fixes and refactors at once; the model runs only when one is picked."""
        doc = ls.app.documents.get(params.text_document.uri)
        if not ls.settings.actions.enabled:
            return []
        base = {"uri": doc.uri, "version": doc.version, "range": convert.range_json(params.range)}
        fixes = [_fix(base, d) for d in params.context.diagnostics]
        only = params.context.only or []
        return fixes + [_offer(base, key) for key in OFFERED if _wanted(key, only)]

    @server.command(RUN_ACTION)
    @request("action", empty=FAIL)
    async def run_action(ls, *args: Any) -> dict[str, Any]:
        """Stream the model's replacement into the document; see ``streaming.run_stream``.

        ``ls`` stays unannotated: pygls resolves a command's annotations at run time to
        convert its arguments, and the server class is only imported for the type checker.
        """
        snapshot, plan = _plan(ls, ActionArgs.parse(args[0] if args else None))
        title = f"codenook: {plan.kind.title.format(message='problem')}"
        async with Progress(ls, title, cancellable=True) as progress:
            progress.report("generating…")
            outcome = await run_stream(
                ls.app.assist.stream(plan),
                EditStream(plan.region.start, plan.original),
                VersionedEdits(ls, snapshot, progress),
                lambda lines: reindent(lines, plan.original),
                lambda text: validate(snapshot, plan.region, text),
                lambda: progress.cancelled,
            )
            progress.finish_with(outcome.status)
        if outcome.status in ("rejected", "stopped"):
            ls.problem(outcome.message, "action-failed", warning=True, once=False)
        return vars(outcome)


def _plan(ls: CodenookServer, spec: ActionArgs) -> tuple[Snapshot, ActionPlan]:
    """The document as the action was offered for, and what the model will be asked."""
    doc = ls.app.documents.get(spec.uri)
    if spec.version is not None and spec.version != doc.version:
        raise JsonRpcContentModified("codenook: the document changed; ask for the action again")
    snapshot = doc.snapshot()
    start, end = spec.offsets(snapshot.lines, ls.encoding)
    path = display_path(doc.uri, ls.roots())
    kind = spec.action
    plan = ls.app.assist.plan(
        snapshot, start, end, kind, path, message=spec.message, instruction=spec.instruction
    )
    return snapshot, plan


def _fix(base: dict[str, Any], diagnostic: types.Diagnostic) -> types.CodeAction:
    title = KINDS["fix"].title.format(message=diagnostic.message.split("\n", 1)[0][:80])
    args = {**base, "action": "fix", "message": diagnostic.message}
    args["range"] = convert.range_json(diagnostic.range)
    command = types.Command(title=title, command=RUN_ACTION, arguments=[args])
    return types.CodeAction(
        title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diagnostic], command=command
    )


def _wanted(key: str, only: Sequence[str]) -> bool:
    return not only or any(KINDS[key].lsp_kind.startswith(str(o)) for o in only)


def _offer(base: dict[str, Any], key: str) -> types.CodeAction:
    kind = KINDS[key]
    command = types.Command(
        title=kind.title, command=RUN_ACTION, arguments=[{**base, "action": key}]
    )
    return types.CodeAction(title=f"codenook: {kind.title}", kind=kind.lsp_kind, command=command)


class VersionedEdits:
    """Sends one streamed edit at a time, each against the exact document it was computed for.

    Every check is made on codenook's own copy (``ls.app.documents``, never pygls's, whose
    lines differ from the editor's) and compares whole texts exactly. An edit goes out only if
    the document is in sync and still the version and text our previous edit left, and only if
    its LSP range names exactly the offsets it was computed for (a range LSP cannot express
    would land elsewhere in the editor). It counts as applied once the client's ``didChange``
    for it has come back and left exactly the expected text. Anything else means the user typed
    meanwhile (or the copies parted): the stream stops there.
    """

    def __init__(self, ls: CodenookServer, snapshot: Snapshot, progress: Progress) -> None:
        self._ls = ls
        self._uri = snapshot.uri
        self._version = snapshot.version
        self._expected = snapshot.text
        self._progress = progress

    async def __call__(self, edit: Edit) -> bool:
        ls = self._ls
        current = ls.app.documents.find(self._uri)
        if (
            current is None
            or current.out_of_sync is not None
            or current.version != self._version
            or current.text != self._expected
        ):
            return False
        version = current.version  # the Document object itself moves on with didChange
        expected = edit.apply(current.text)
        lines = current.lines
        lsp_range = convert.lsp_range(lines, edit.start, edit.end, ls.encoding)
        if convert.offset(lines, lsp_range.start, ls.encoding) != edit.start or (
            convert.offset(lines, lsp_range.end, ls.encoding) != edit.end
        ):
            return False
        text_edit = types.TextEdit(range=lsp_range, new_text=edit.text)
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=self._uri, version=version)
        change = types.TextDocumentEdit(text_document=identifier, edits=[text_edit])
        params = types.ApplyWorkspaceEditParams(edit=types.WorkspaceEdit(document_changes=[change]))
        try:
            # A client that never answers must not hold the action (and shutdown) forever.
            result = await asyncio.wait_for(
                ls.workspace_apply_edit_async(params), EDIT_ECHO_TIMEOUT_S
            )
        except (TimeoutError, asyncio.TimeoutError):
            return False
        except JsonRpcException as exc:  # the client refused, or answered something malformed
            ls.log(f"workspace/applyEdit failed: {exc}")
            return False
        if result is None or not getattr(result, "applied", False):
            return False
        if not await self._echo(version):
            return False
        after = ls.app.documents.find(self._uri)
        if after is None or after.out_of_sync is not None or after.text != expected:
            return False  # the user typed between our edit and its didChange
        self._version, self._expected = after.version, after.text
        self._progress.report(f"{edit.text.count(chr(10)) + 1} line(s)")
        return True

    async def _echo(self, version: int) -> bool:
        """Until the document moves past ``version`` (our edit's didChange), or time runs out."""
        while True:
            doc = self._ls.app.documents.find(self._uri)
            if doc is None:
                return False
            if doc.version != version:
                return True
            if not await self._ls.versions.wait_changed(self._uri, EDIT_ECHO_TIMEOUT_S):
                return False
