"""What an agent tool asks to change in a file, before anything is written.

Tools never write: they compute a ``FileChange`` against the text they read, and whoever owns
the files (the editor through ``workspace/applyEdit``, or a plain directory for
``codenook eval-agent``) applies it only if the file still holds exactly ``before``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileChange:
    path: Path  # absolute, resolved, inside a workspace folder
    display: str  # how the model and the user see it: relative to its workspace folder
    before: str | None  # the text the change was computed against; None: a new file
    after: str

    @property
    def created(self) -> bool:
        return self.before is None
