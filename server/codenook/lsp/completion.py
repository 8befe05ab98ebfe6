"""``textDocument/inlineCompletion``: the ghost text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from codenook.completion.service import Suggestion
from codenook.lsp import convert
from codenook.lsp.dispatch import request
from codenook.text.documents import Snapshot

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer


def _empty() -> types.InlineCompletionList:
    return types.InlineCompletionList(items=[])


def register(server: CodenookServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    @request("completion", empty=_empty)
    async def inline_completion(
        ls: CodenookServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        documents = ls.app.documents
        doc = documents.get(params.text_document.uri)
        if not ls.settings.completion.enabled or not documents.completes(doc):
            return _empty()
        snapshot = doc.snapshot()
        offset = convert.offset(snapshot.lines, params.position, ls.encoding)
        _moved_to(ls, snapshot, params.position.line)
        suggestion = await ls.app.completions.complete(snapshot, offset)
        _record(ls, snapshot, params.position, suggestion)
        return convert.inline_list(suggestion.text, params.position)


def _moved_to(ls: CodenookServer, snapshot: Snapshot, line: int) -> None:
    """Completing in another document than last time: the place left counts as visited."""
    last, ls.last_place = ls.last_place, (snapshot.uri, line)
    if last is not None and last[0] != snapshot.uri:
        previous = ls.app.documents.find(last[0])
        if previous is not None:
            ls.app.workspace.visited(last[0], previous.snapshot(), last[1])


def _record(
    ls: CodenookServer, snapshot: Snapshot, position: types.Position, suggestion: Suggestion
) -> None:
    """What ``codenook/stats`` reports of the last completion, and the prompt trace."""
    ls.last_completion = {"uri": snapshot.uri, "version": snapshot.version}
    ls.last_completion.update(vars(suggestion.timings))
    if ls.settings.trace.prompts and suggestion.prompt is not None:
        ls.log(
            f"completion {snapshot.uri}:{position.line + 1}:{position.character + 1}\n"
            f"{suggestion.timings.summary()}\n--- prompt ---\n{suggestion.prompt.text}\n"
            f"--- raw ---\n{suggestion.raw}"
        )
