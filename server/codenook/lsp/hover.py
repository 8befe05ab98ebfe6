"""``textDocument/hover``: what a function or class does, explained by the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from codenook.assist.hover import hover_messages, with_definitions
from codenook.lsp import convert
from codenook.lsp.dispatch import request

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer


def register(server: CodenookServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @request("hover", empty=None)
    async def hover(ls: CodenookServer, params: types.HoverParams) -> types.Hover | None:
        doc = ls.app.documents.get(params.text_document.uri)
        if not ls.settings.hover.enabled:
            return None
        snapshot = doc.snapshot()
        offset = convert.offset(snapshot.lines, params.position, ls.encoding)
        target = ls.app.assist.hover_target(snapshot, offset)
        if target is None:
            return None
        if not target.in_file:  # defined in another file: the index knows what it is
            target = with_definitions(target, ls.app.workspace.definitions(snapshot, target.name))
        ls.app.workspace.visited(snapshot.uri, snapshot, params.position.line)
        if ls.settings.trace.prompts:
            question = "\n".join(f"[{m.role}]\n{m.content}" for m in hover_messages(target))
            ls.log(f"hover {snapshot.uri}:{params.position.line + 1}\n--- prompt ---\n{question}")
        markdown, cached = await ls.app.assist.hover(target)
        ls.last_hover = {"name": target.name, "cached": cached, "definedIn": target.defined_in}
        content = types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown)
        return types.Hover(contents=content)
