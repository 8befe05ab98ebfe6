"""Between the editor's document URIs and the file system's paths.

LSP names documents by URI, while the index, git and the prompt's file headers speak in
paths; one conversion, here, keeps them agreeing. Clients percent-encode (``%20``, VS Code's
``c%3A``), and not every document is a file: ``untitled:``, ``vscode-notebook-cell:`` and
friends have no path, and must not be mistaken for one in the current directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

# A scheme of two characters or more: `C:` is a Windows drive, not a URI.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_DRIVE = re.compile(r"^/[A-Za-z]:")


def is_uri(text: str) -> bool:
    return _SCHEME.match(text) is not None


def _file_uri_path(uri: str) -> str | None:
    """The decoded, '/'-separated path of a ``file:`` URI; None for another scheme."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    path = unquote(parts.path)
    if parts.netloc and parts.netloc.lower() != "localhost":
        path = f"//{parts.netloc}{path}"  # a UNC share: file://server/share/x
    return path


def uri_to_path(uri: str) -> str | None:
    """The file system path a ``file:`` URI names, or None when it names no file."""
    path = _file_uri_path(uri)
    if path is None or os.name != "nt":
        return path
    if _DRIVE.match(path):
        path = path[1:]  # file:///c:/x is c:\x
    return path.replace("/", "\\")


def path_to_uri(path: str | os.PathLike[str]) -> str:
    """The ``file:`` URI of a path (made absolute), percent-encoded as clients expect."""
    return Path(os.path.abspath(path)).as_uri()


def fs_path(uri_or_path: str) -> str | None:
    """An absolute path from a URI or a path: callers get either from the editor (workspace
    folders may come as ``rootPath``); None for a URI that names no file."""
    if is_uri(uri_or_path):
        path = uri_to_path(uri_or_path)
        return None if path is None else os.path.abspath(path)
    return os.path.abspath(uri_or_path)


def display_path(uri: str, roots: Iterable[str]) -> str:
    """The path the model sees in a file header: relative to the first workspace root that
    holds the file (the model's repository format expects repository paths), otherwise the
    file's name, since an absolute path would only spend tokens and leak the user's layout.

    Always '/'-separated, whatever the platform: the model was trained on such paths.
    """
    path = _posix_path(uri)
    for root in roots:
        root_path = _posix_path(root).rstrip("/")
        if root_path and path.startswith(root_path + "/"):
            return path[len(root_path) + 1 :]
    return PurePosixPath(path).name


def _posix_path(uri_or_path: str) -> str:
    found = _file_uri_path(uri_or_path) if is_uri(uri_or_path) else None
    return found if found is not None else unquote(uri_or_path)


def folder_name(uri_or_path: str) -> str:
    """The last part of a folder's path, decoded: the repository name the model sees."""
    return PurePosixPath(_posix_path(uri_or_path).rstrip("/")).name
