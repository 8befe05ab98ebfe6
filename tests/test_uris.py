"""URIs and paths: percent-encoding, schemes that name no file, and the model's display path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codenook.uris import display_path, fs_path, is_uri, path_to_uri, uri_to_path

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX paths")


@posix_only
@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///home/me/x.py", "/home/me/x.py"),
        ("file:///home/me/a%20b/caf%C3%A9.py", "/home/me/a b/café.py"),
        ("file:///home/me/100%25.py", "/home/me/100%.py"),
        ("file:///home/me/c%23/x.cs", "/home/me/c#/x.cs"),
        ("file://localhost/etc/hosts", "/etc/hosts"),
        ("FILE:///x.py", "/x.py"),
    ],
)
def test_uri_to_path_decodes(uri: str, path: str) -> None:
    assert uri_to_path(uri) == path


@pytest.mark.parametrize(
    "uri", ["untitled:Untitled-1", "vscode-notebook-cell:/x.ipynb#W0", "https://example.com/x"]
)
def test_uris_of_other_schemes_name_no_file(uri: str) -> None:
    assert uri_to_path(uri) is None
    assert fs_path(uri) is None


@posix_only
def test_path_to_uri_encodes_and_round_trips(tmp_path: Path) -> None:
    path = str(tmp_path / "a b" / "100%" / "café.py")
    uri = path_to_uri(path)
    assert uri.startswith("file:///") and " " not in uri and "%25" in uri
    assert uri_to_path(uri) == path


def test_path_to_uri_makes_relative_paths_absolute() -> None:
    assert uri_to_path(path_to_uri("x.py")) == os.path.abspath("x.py")


def test_is_uri_tells_drives_and_paths_from_schemes() -> None:
    assert is_uri("file:///x") and is_uri("untitled:Untitled-1")
    assert not is_uri("/x/y.py") and not is_uri("C:\\x\\y.py") and not is_uri("x.py")


@posix_only
def test_fs_path_takes_uris_and_paths() -> None:
    assert fs_path("file:///a/b%20c") == "/a/b c"
    assert fs_path("/a/./b/../c") == "/a/c"
    assert fs_path("c.py") == os.path.abspath("c.py")


@pytest.mark.parametrize(
    ("uri", "roots", "shown"),
    [
        ("file:///w/pkg/m.py", ["file:///w"], "pkg/m.py"),
        ("file:///w/pkg/m.py", ["file:///w/"], "pkg/m.py"),
        ("file:///w/a%20b/m.py", ["file:///w"], "a b/m.py"),
        ("file:///w%20x/m.py", ["file:///w%20x"], "m.py"),
        ("file:///elsewhere/m.py", ["file:///w"], "m.py"),
        ("file:///wide/m.py", ["file:///w"], "m.py"),  # a prefix of a name is no root
        ("file:///w/inner/m.py", ["file:///w", "file:///w/inner"], "inner/m.py"),  # first root
        ("file:///w/m.py", ["/w"], "m.py"),  # a root given as a path
        ("file:///w/m.py", ["file:///"], "m.py"),
        ("file:///c%3A/w/m.py", ["file:///c%3A/w"], "m.py"),  # VS Code on Windows
        ("untitled:Untitled-1", ["file:///w"], "untitled:Untitled-1"),
        ("file:///w/m.py", [], "m.py"),
    ],
)
def test_display_path(uri: str, roots: list[str], shown: str) -> None:
    assert display_path(uri, roots) == shown
