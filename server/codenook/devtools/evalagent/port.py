"""The agent loop's ``Port`` on a plain directory: the evaluation's stand-in for the editor.

There is no user to ask, so the answers are fixed: edits are applied (the task's copy is
thrown away or kept for inspection, never the user's files), and commands run only when the
tasks need them. The tasks ask the model to run the fixture's tests with ``python``, so
commands starting with a Python interpreter run; anything else is denied unless the
evaluation's ``--allow-commands`` let it through before the loop asked. A denied command
reaches the model as a tool error, which is what a model meets in an editor too.

Edits obey the same rule the editor's ``workspace/applyEdit`` does: the file must still
hold the text the change was computed against, so a tool that read stale text cannot
clobber what is on disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from codenook.agent.changes import FileChange
from codenook.agent.loop import APPLY, DENY, RUN, Kind
from codenook.workspace.index import WorkspaceIndex

# How the loop words its question (agent/loop.py ``_run_command``): the port only sees it.
_ASKED = re.compile(r"wants to run `(.*)` in ", re.S)
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")


def command_in(message: str) -> str | None:
    match = _ASKED.search(message)
    return match.group(1) if match else None


def runs_python(command: str) -> bool:
    words = command.split()
    return bool(words) and _PYTHON.match(Path(words[0]).name) is not None


class DirectoryPort:
    def __init__(
        self, root: Path, *, index: WorkspaceIndex | None = None, log: TextIO | None = None
    ) -> None:
        self.root = root
        self._index = index
        self._log = log
        self.commands: list[tuple[str, str]] = []  # (command, answer) for every question
        self._streaming = False

    def text_of(self, path: Path) -> str | None:
        return None  # nothing is open: the tools read the disk

    def open_texts(self) -> dict[Path, str]:
        return {}

    async def apply(self, change: FileChange) -> str | None:
        path = change.path
        try:
            current = path.read_bytes().decode("utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError) as exc:
            return f"it could not be read: {exc}"
        if current != change.before:
            if change.before is None:
                return "the file exists already"
            return "it is missing" if current is None else "it changed on disk since it was read"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(change.after.encode("utf-8", "surrogatepass"))
        except OSError as exc:
            return f"it could not be written: {exc}"
        if self._index is not None:
            self._index.update_file(str(path), change.after)
        return None

    async def ask(self, message: str, choices: Sequence[str]) -> str | None:
        if RUN in choices:
            command = command_in(message) or ""
            answer = RUN if runs_python(command) else DENY
            self.commands.append((command, answer))
            return answer
        return APPLY if APPLY in choices else None

    def transcript(self, kind: Kind, text: str) -> None:
        if self._log is None:
            return
        if kind == "model":  # streamed in pieces: shown as it comes
            self._log.write(text)
            self._streaming = True
        else:
            if self._streaming:
                self._log.write("\n")
                self._streaming = False
            self._log.write(f"[{kind}] {text}\n")
        self._log.flush()

    def step(self, text: str) -> None:
        pass
