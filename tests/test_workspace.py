"""WorkspaceContext: folders, document events, debounced index updates, cross-file chunks."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from codenook.completion.context import Budget, build_completion_context
from codenook.text.documents import Document, Snapshot
from codenook.text.positions import Encoding
from codenook.workspace.context import FILE_EVENTS_ON_LOOP, WorkspaceContext
from codenook.workspace.index import BuildStats

PROJECT = Path(__file__).parent / "fixtures" / "project"


def words(text: str) -> int:
    return len(text.split()) + text.count("\n")


class Timers:
    """A stand-in for loop.call_later: runs what is due when told to."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def __call__(self, delay: float, function: Callable[[], None]) -> object:
        cancelled = [False]
        self.pending.append((delay, function, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def run_all(self) -> int:
        due, self.pending = self.pending, []
        ran = 0
        for _, function, cancelled in due:
            if not cancelled[0]:
                function()
                ran += 1
        return ran


def built(root: Path, **kwargs) -> tuple[WorkspaceContext, dict[str, Document]]:
    documents: dict[str, Document] = {}
    done = threading.Event()
    progress: list[tuple[int, int]] = []

    def finished(root: str, stats: BuildStats | None, error: BaseException | None) -> None:
        assert stats is not None and error is None
        done.set()

    def document(uri: str) -> Snapshot | None:
        found = documents.get(uri)
        return found.snapshot() if found else None

    context = WorkspaceContext(
        workers=0,
        document=document,
        on_progress=lambda root, n, total: progress.append((n, total)),
        on_done=finished,
        **kwargs,
    )
    context.set_folders([root.as_uri()])
    assert done.wait(30)
    assert progress and progress[-1][0] == progress[-1][1]
    return context, documents


def test_folders_are_indexed_and_files_found_in_the_innermost(tmp_path: Path) -> None:
    shutil.copytree(PROJECT, tmp_path / "project")
    context, _ = built(tmp_path / "project")
    (index,) = context.indexes.values()
    assert index.state == "ready" and len(index) > 20
    found = context.index_for((tmp_path / "project" / "shop" / "orders.py").as_uri())
    assert found is not None and found[1] == "shop/orders.py"
    assert context.index_for((tmp_path / "elsewhere.py").as_uri()) is None
    status = context.status()
    assert next(iter(status.values()))["state"] == "ready"
    context.set_folders([])
    assert context.indexes == {}


def test_edits_update_the_index_when_the_user_pauses(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "shop", tmp_path / "shop")
    timers = Timers()
    context, documents = built(tmp_path, schedule=timers)
    (index,) = context.indexes.values()
    uri = (tmp_path / "shop" / "models.py").as_uri()
    text = (tmp_path / "shop" / "models.py").read_text()
    document = documents[uri] = Document(uri, text, 1)
    context.opened(uri, document.snapshot())
    assert [v.path for v in context.activity.snapshot().visits] == ["shop/models.py"]
    end = document.lines.line_count - 1
    for version, piece in enumerate(["\n", "def new_helper():", "\n", "    pass"], start=2):
        line = document.lines.line_count - 1
        column = len(document.lines.line_text(line))
        document.apply_edit((line, column), (line, column), piece, Encoding.UTF32, version)
        context.changed(uri, document.snapshot(), line, line, line + piece.count("\n"))
    assert index.definitions("new_helper") == ()  # not while typing
    assert len(timers.pending) == 4 and timers.run_all() == 1  # only the last one runs
    assert [d.path for d in index.definitions("new_helper")] == ["shop/models.py"]
    edits = context.activity.snapshot().edits
    assert edits[0].path == "shop/models.py" and edits[0].end_line >= end + 1
    # Closing without saving: the file on disk is what counts again.
    context.closed(uri)
    assert index.definitions("new_helper") == ()


def test_file_events_from_disk(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "shop", tmp_path / "shop")
    context, _ = built(tmp_path)
    (index,) = context.indexes.values()
    taxes = tmp_path / "shop" / "taxes.py"
    taxes.write_text("def vat(amount):\n    return amount\n")
    context.files_changed([(taxes.as_uri(), "created")], lambda uri: False)
    assert [d.name for d in index.definitions("vat")] == ["vat"]
    taxes.write_text("def vat2(amount):\n    return amount\n")
    context.files_changed([(taxes.as_uri(), "changed")], lambda uri: True)  # open: skipped
    assert [d.name for d in index.definitions("vat")] == ["vat"]
    taxes.unlink()
    context.files_changed([(taxes.as_uri(), "deleted")], lambda uri: True)
    assert index.definitions("vat") == ()


def test_a_burst_of_file_events_is_indexed_off_the_loop(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "shop", tmp_path / "shop")
    context, _ = built(tmp_path)
    (index,) = context.indexes.values()
    count = FILE_EVENTS_ON_LOOP + 5
    events = []
    for i in range(count):
        path = tmp_path / "shop" / f"gen{i}.py"
        path.write_text(f"def made_{i}():\n    pass\n")
        events.append((path.as_uri(), "created"))
    calling = threading.current_thread()
    updated_on: set[threading.Thread] = set()
    update = index.update_file

    def recording(path: str, *args: object) -> object:
        updated_on.add(threading.current_thread())
        return update(path, *args)  # type: ignore[arg-type]

    index.update_file = recording  # type: ignore[method-assign]
    context.files_changed(events, lambda uri: False)
    assert context.wait_updates(30)
    assert calling not in updated_on and len(updated_on) == 1
    assert all(index.definitions(f"made_{i}") for i in range(count))
    # A few events are indexed at once, on the caller's thread.
    updated_on.clear()
    context.files_changed(events[:2], lambda uri: False)
    assert updated_on == {calling}


def test_index_limits_reach_the_indexes(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"m{i:02}.py").write_text(f"def f{i}():\n    pass\n")
    finished: list[BuildStats] = []
    done = threading.Event()

    def on_done(root: str, stats: BuildStats | None, error: BaseException | None) -> None:
        assert stats is not None
        finished.append(stats)
        done.set()

    context = WorkspaceContext(workers=0, max_files=5, on_done=on_done)
    context.set_folders([tmp_path.as_uri()])
    assert done.wait(30)
    (index,) = context.indexes.values()
    assert len(index) == 5 and finished[0].stopped == "index.maxFiles"
    assert context.status()[str(tmp_path)]["stopped"] == "index.maxFiles"
    context.max_files = 100
    context.max_definitions = 7
    context.max_file_bytes = 4096
    assert (index.max_files, index.max_definitions, index.max_file_bytes) == (100, 7, 4096)
    new = tmp_path / "new.py"
    new.write_text("def a():\n    pass\ndef b():\n    pass\ndef c():\n    pass\n")
    context.files_changed([(new.as_uri(), "created")], lambda uri: False)
    assert index.get("new.py") is None  # 5 + 3 definitions > 7
    context.max_definitions = 100
    context.files_changed([(new.as_uri(), "created")], lambda uri: False)
    assert index.get("new.py") is not None


def test_crossfile_for_a_completion(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "shop", tmp_path / "shop")
    context, _ = built(tmp_path)
    uri = (tmp_path / "shop" / "orders.py").as_uri()
    text = (tmp_path / "shop" / "orders.py").read_text()
    snapshot = Document(uri, text, 1).snapshot()
    offset = len(text)
    ctx = build_completion_context(snapshot, offset, Budget(), words, "shop/orders.py")
    first = context.crossfile(snapshot, offset, ctx, 200, words)
    assert [c.path for c in first.chunks] == ["shop/models.py"]
    assert "def parse_price(" in first.chunks[0].text
    again = context.crossfile(snapshot, offset, ctx, 200, words)
    assert again is first and context.memo.hits == 1
    assert context.crossfile(snapshot, offset, ctx, 0, words).chunks == ()
    disabled = WorkspaceContext(enabled=False)
    disabled.set_folders([tmp_path.as_uri()])
    assert disabled.indexes == {}
    assert disabled.crossfile(snapshot, offset, ctx, 200, words).chunks == ()
