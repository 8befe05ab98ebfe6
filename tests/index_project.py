"""Small workspaces written to a temporary folder, indexed, and asked for cross-file context:
what the import and re-export tests share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codenook.text.documents import Document
from codenook.workspace.activity import ActivitySnapshot
from codenook.workspace.crossfile import Chunk, build_crossfile_context
from codenook.workspace.index import WorkspaceIndex


def words(text: str) -> int:
    """A token count that is easy to reason about in a test: words and line breaks."""
    return len(text.split()) + text.count("\n")


def project(tmp_path: Path, files: dict[str, str]) -> WorkspaceIndex:
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    index = WorkspaceIndex(tmp_path)
    index.build(workers=0)
    return index


def chunks_at(
    index: WorkspaceIndex,
    path: str,
    marker: str,
    budget: int = 400,
    count: Callable[[str], int] = words,
    *,
    after: bool = True,
) -> list[Chunk]:
    """The cross-file chunks for a cursor just after (or at) ``marker`` in ``path``."""
    text = (Path(index.root) / path).read_text()
    document = Document(f"file://{index.root}/{path}", text, 1)
    offset = text.index(marker) + (len(marker) if after else 0)
    context = build_crossfile_context(
        document.snapshot(), offset, path, index, ActivitySnapshot(), budget, count
    )
    return list(context.chunks)
