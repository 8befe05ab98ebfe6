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
        count = _wanted(ls, params)
        suggestion = await ls.app.completions.complete(snapshot, offset, alternatives=count)
        _record(ls, snapshot, params.position, suggestion)
        items = [convert.inline_list(t, params.position).items[0] for t in suggestion.texts]
        return types.InlineCompletionList(items=items)


def _wanted(ls: CodenookServer, params: types.InlineCompletionParams) -> int:
    """One suggestion while typing: the list waits for its last item, and a keystroke needs
    only the first. Alternatives when the user asks (VS Code's next/previous inline
    suggestion and its trigger command, the Neovim cycle keys all send Invoked)."""
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    return ls.settings.completion.alternatives if invoked else 1


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
    ls.last_completion["items"] = len(suggestion.texts)
    if ls.settings.trace.prompts and suggestion.prompt is not None:
        ls.log(
            f"completion {snapshot.uri}:{position.line + 1}:{position.character + 1}\n"
            f"{suggestion.timings.summary()}\n--- prompt ---\n{suggestion.prompt.text}\n"
            f"--- raw ---\n{suggestion.raw}"
        )
