"""Where the engine host listens: a private directory of the user's, never a shared one.

The socket is the host's only door for editor windows, so it lives in a directory only its
owner can enter (0700, owned by us, not a symlink), and the token next to it (0600) proves a
client could read that directory. ``CODENOOK_RUNTIME_DIR`` moves it (tests, several users of
one account); otherwise ``$XDG_RUNTIME_DIR/codenook``, else ``/tmp/codenook-<uid>``.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

RUNTIME_ENV = ENV = "CODENOOK_RUNTIME_DIR"


class UnsafeDirectory(RuntimeError):
    """The runtime directory is not private to this user; the message names the fix."""


@dataclass(frozen=True)
class HostPaths:
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "engine.sock"

    @property
    def token(self) -> Path:
        return self.root / "engine.token"

    @property
    def lock(self) -> Path:
        return self.root / "engine.lock"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"


def runtime_dir() -> Path:
    chosen = os.environ.get(RUNTIME_ENV)
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "codenook"
    return Path(tempfile.gettempdir()) / f"codenook-{os.getuid()}"


def host_paths(create: bool = True) -> HostPaths:
    """The host's files, in a directory checked (and made, with ``create``) private."""
    root = runtime_dir()
    if create:
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UnsafeDirectory(f"cannot create {root}: {exc}") from exc
    if not root.exists():
        return HostPaths(root)
    info = root.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{root} is not a directory (a symlink?); remove it or set {ENV}")
    if info.st_uid != os.getuid():
        raise UnsafeDirectory(f"{root} belongs to another user; set {ENV} to a directory of yours")
    if info.st_mode & 0o077:
        os.chmod(root, 0o700)
    return HostPaths(root)


def new_token(path: Path) -> str:
    """A fresh token written 0600 (replacing any old one atomically)."""
    token = secrets.token_urlsafe(24)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token)
    os.replace(temp, path)
    return token


def read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None
