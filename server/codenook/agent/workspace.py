"""What an agent's tools may see of the user's folders, and the text they see there.

The model is not trusted with the file system: every path it names is resolved here and
refused unless it stays inside a workspace folder once symbolic links are followed (a link
or a linked parent directory may lead anywhere). ``.git`` holds nothing a model needs and
hooks and config that run commands, so it is neither read nor changed. Files named like
credentials are not read unless the user allows it (``agent.readSecrets``): the model's
context may be logged or shown, and a key once read cannot be unread. Reading goes through
``read_regular`` (no FIFOs, devices or links swapped in meanwhile), and an open editor
buffer wins over the disk, since the user edits what they see. Tools never write: edits
and new files come back as a ``FileChange`` for the editor to apply.

Every refusal is a ``ToolError`` whose message goes to the model verbatim, so it says what
was wrong and what to do instead: a model can correct itself only from what it is told.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codenook.agent.changes import FileChange
from codenook.workspace.index.files import read_regular, walk_entries
from codenook.workspace.index.model import Skipped
from codenook.workspace.index.store import WorkspaceIndex

DEFAULT_SECRET_GLOBS: tuple[str, ...] = (
    *(".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*"),
    *("*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", ".git-credentials", ".netrc"),
    *(".npmrc", ".pypirc", "credentials", "credentials.*"),
)
# Templates that document which variables exist, and public keys: meant to be shared.
NOT_SECRET_NAMES = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})
NOT_SECRET_SUFFIXES = (".pub",)
SECRETS_SETTING = "agent.readSecrets"

LIST_LIMIT = 400  # entries list_files shows
WALK_LIMIT = 20_000  # files a listing or search looks at before giving up counting
SEARCH_MATCHES = 100
SEARCH_SECONDS = 5.0
SEARCH_LINE_CHARS = 200  # of a matching line shown
REGEX_LINE_CHARS = 10_000  # of a line searched: bounds the cost of one backtracking match
BINARY_PROBE = 8192

TextOf = Callable[[Path], str | None]
Lookup = Callable[[str], Sequence[tuple[Path, int, str]]]


def index_lookup(indexes: Callable[[], Iterable[WorkspaceIndex]]) -> Lookup:
    """``find_definition``'s lookup over workspace indexes; ``indexes`` is asked at each call
    because folders come and go while a task runs."""

    def lookup(name: str) -> list[tuple[Path, int, str]]:
        found: list[tuple[Path, int, str]] = []
        for index in indexes():
            for definition in index.definitions(name):
                text = f"{definition.kind} {definition.signature.strip()}".strip()
                found.append((Path(index.root) / definition.path, definition.line + 1, text))
        return found

    return lookup


class ToolError(Exception):
    """A refusal the model reads verbatim, so it says what was wrong and what to do instead."""


@dataclass(frozen=True)
class Access:
    """The folders a task may touch and how far; built with ``create`` so that roots are
    resolved once, and every containment check compares real paths."""

    roots: tuple[Path, ...]
    secret_globs: tuple[str, ...] = DEFAULT_SECRET_GLOBS
    read_secrets: bool = False
    max_file_bytes: int = 1_000_000
    output_chars: int = 8000

    @classmethod
    def create(cls, roots: Iterable[Path | str], **settings: Any) -> Access:
        """Takes the other fields by name; ``secret_globs`` may be any iterable."""
        resolved = tuple(dict.fromkeys(Path(os.path.realpath(root)) for root in roots))
        if not resolved:
            raise ValueError("an agent needs at least one workspace folder")
        if "secret_globs" in settings:
            settings["secret_globs"] = tuple(settings["secret_globs"])
        return cls(roots=resolved, **settings)

    def labels(self) -> tuple[str, ...]:
        """How paths name each root when there are several: its folder name, numbered when
        two folders share a name so that every label leads back to one root."""
        seen: dict[str, int] = {}
        out: list[str] = []
        for root in self.roots:
            name = root.name or "root"
            seen[name] = seen.get(name, 0) + 1
            out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
        return tuple(out)


# -- paths --


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _owner(access: Access, real: str) -> int | None:
    """The deepest root holding ``real``, so that nested folders display their own way."""
    holding = [index for index, root in enumerate(access.roots) if _inside(str(root), real)]
    return max(holding, key=lambda index: len(str(access.roots[index])), default=None)


def _in_git(access: Access, real: str) -> bool:
    owner = _owner(access, real)
    rel = os.path.relpath(real, access.roots[owner]) if owner is not None else real
    return any(part.lower() == ".git" for part in Path(rel).parts)


def _folders(access: Access) -> str:
    if len(access.roots) == 1:
        return f"the workspace folder {access.roots[0]}"
    return "the workspace folders " + ", ".join(
        f"{label} ({root})" for label, root in zip(access.labels(), access.roots, strict=True)
    )


def _locate(access: Access, raw: str) -> tuple[Path | None, str]:
    """The root a relative path belongs to and the joined path (no root for an absolute
    one). A leading root label picks that root; a single root's own name is accepted too
    when nothing by that name lies inside it, since models often prefix it."""
    if os.path.isabs(raw):
        return None, raw
    norm = posixpath.normpath(raw.replace(os.sep, "/"))
    first, _, rest = norm.partition("/")
    for label, root in zip(access.labels(), access.roots, strict=True):
        if first == label and (len(access.roots) > 1 or not (root / first).exists()):
            return root, os.path.join(root, rest or ".")
    return access.roots[0], os.path.join(access.roots[0], norm)


def resolve(access: Access, path: str, *, write: bool = False) -> Path:
    """The real path a tool argument names, refused unless it stays inside a root."""
    raw = path.strip()
    if not raw:
        raise ToolError("the path is empty; name a file relative to the workspace, e.g. src/app.py")
    if "\x00" in raw:
        raise ToolError("the path contains a NUL character; give a plain file path")
    root, joined = _locate(access, raw)
    lexical = os.path.normpath(joined)
    if root is not None and not _inside(str(root), lexical):
        raise ToolError(
            f"{raw} leads outside the workspace ('..' climbs above it); "
            f"use paths inside {_folders(access)}"
        )
    real = os.path.realpath(lexical)
    owner = _owner(access, real)
    if owner is None:
        how = " (through a symbolic link)" if root is not None else ""
        raise ToolError(f"{raw} is outside the workspace{how}; use paths inside {_folders(access)}")
    if _in_git(access, real):
        verb = "changed" if write else "read"
        raise ToolError(
            f"{raw} is inside a .git directory, which agent tools do not {verb}; "
            "work on the project's own files"
        )
    if write and real == str(access.roots[owner]):
        raise ToolError(f"{raw} is a workspace folder itself; name a file inside it")
    return Path(real)


def display(access: Access, path: Path) -> str:
    """The path as the model and the user see it, which ``resolve`` turns back into it."""
    owner = _owner(access, str(path))
    if owner is None:
        return path.as_posix()
    rel = Path(os.path.relpath(path, access.roots[owner])).as_posix()
    if len(access.roots) == 1:
        return rel
    label = access.labels()[owner]
    return label if rel == "." else f"{label}/{rel}"


def is_secret(access: Access, path: Path) -> str | None:
    """The secret glob the file's name matches, if any (case-insensitively: ``ID_RSA`` on a
    case-insensitive disk is the same key)."""
    name = path.name.lower()
    if name in NOT_SECRET_NAMES or name.endswith(NOT_SECRET_SUFFIXES):
        return None
    for glob in access.secret_globs:
        if fnmatch.fnmatchcase(name, glob.lower()):
            return glob
    return None


def _refuse_secret(access: Access, path: Path, shown: str) -> None:
    glob = is_secret(access, path)
    if glob is not None and not access.read_secrets:
        raise ToolError(
            f"{shown} may hold secrets (its name matches {glob!r}), so agent tools do not "
            f"open it; the user can allow that with the setting {SECRETS_SETTING}. "
            "Work without its contents or ask the user."
        )


# -- reading --


def _current_text(access: Access, text_of: TextOf, target: Path, shown: str, missing: str) -> str:
    """The text a tool works on: the editor's buffer when the file is open, else the disk."""
    if target.is_dir():
        raise ToolError(f"{shown} is a directory; use list_files to see what it holds")
    _refuse_secret(access, target, shown)
    too_big = (
        f"{shown} is larger than {access.max_file_bytes} bytes, more than agent tools "
        "open; use search to find the lines you need in it"
    )
    buffer = text_of(target)
    if buffer is not None:
        if "\x00" in buffer[:BINARY_PROBE]:
            raise ToolError(f"{shown} is a binary file; agent tools work on text only")
        if len(buffer.encode("utf-8", "surrogatepass")) > access.max_file_bytes:
            raise ToolError(too_big)
        return buffer
    if not os.path.lexists(target):
        raise ToolError(missing)
    try:
        data, _ = read_regular(str(target), access.max_file_bytes, follow=False)
    except Skipped as skipped:
        if skipped.reason == "huge":
            raise ToolError(too_big) from None
        if skipped.reason == "special":
            raise ToolError(f"{shown} is not a regular file; agent tools read files only") from None
        raise ToolError(f"{shown} could not be read") from None
    try:
        if b"\x00" not in data[:BINARY_PROBE]:
            return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    raise ToolError(f"{shown} is a binary file (or not UTF-8); agent tools work on text only")


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, split at ``\\n`` only, as editors number them (unlike
    ``str.splitlines``, which also splits at form feeds and Unicode separators)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def read_file(
    access: Access,
    text_of: TextOf,
    path: str,
    start_line: int | None = None,
    end_line: int | None = None,
) -> str:
    """A header naming the lines shown, then the lines exactly as they are (no numbers),
    since the model copies text from here into edits. An ``end_line`` past the end is
    clamped; a start past it is an error that tells the file's length."""
    target = resolve(access, path)
    shown = display(access, target)
    missing = f"there is no file {shown}; use list_files to see which files exist"
    lines = _split_lines(_current_text(access, text_of, target, shown, missing))
    count = len(lines)
    first = 1 if start_line is None else start_line
    last = count if end_line is None else min(end_line, count)
    if count == 0:
        if first > 1:
            raise ToolError(f"start_line {first} is out of range: {shown} is empty (0 lines)")
        return f"{shown} (empty file)"
    if first < 1 or first > count:
        raise ToolError(f"start_line {first} is out of range: {shown} has {count} lines")
    if end_line is not None and end_line < first:
        raise ToolError(f"end_line {end_line} is before start_line {first}")
    budget = access.output_chars
    body: list[str] = []
    number = first
    while number <= last:
        line = lines[number - 1]
        if len(line) > budget:
            if not body:  # one huge line: show its start rather than nothing
                body.append(line[:budget] + f"… (line {number} cut at {budget} characters)\n")
                number += 1
            break
        body.append(line)
        budget -= len(line)
        number += 1
    shown_last = number - 1
    out = f"{shown} (lines {first}-{shown_last} of {count})\n" + "".join(body)
    if shown_last < last:
        out = out.rstrip("\n") + (
            f"\n… lines {shown_last + 1}-{last} not shown (output limit); "
            f"continue with start_line={shown_last + 1}"
        )
    return out


def _walk(access: Access, base: Path) -> Iterator[Path]:
    """Files under ``base`` as a listing would show them: ``.gitignore`` files honoured
    (those of folders above ``base`` too), VCS folders, caches, virtualenvs and installed
    dependencies skipped (a committed ``vendor/`` or ``build/`` is the user's own code),
    directories never entered through a link, links leading outside left out."""
    owner = _owner(access, str(base))
    if owner is None:
        return
    root = str(access.roots[owner])
    rel_base = Path(os.path.relpath(base, root)).as_posix()
    rel_base = "" if rel_base == "." else rel_base
    for rel, entry in walk_entries(root, rel_base, keep=lambda name: name != ".git"):
        try:
            is_link = entry.is_symlink()
        except OSError:
            continue
        if is_link:
            real = os.path.realpath(entry.path)
            if _owner(access, real) is None or os.path.isdir(real) or _in_git(access, real):
                continue
        yield Path(root, rel)


def _files(access: Access, path: str | None, glob: str | None) -> Iterator[Path]:
    """The files a listing or search covers: every root when no path is named; ``glob``
    matches a file's name or its path below the folder named."""
    if path is None or path.strip() in ("", ".", "./"):
        bases = list(access.roots)
    else:
        bases = [resolve(access, path)]
    for base in bases:
        if base.is_dir():
            for file in _walk(access, base):
                rel = Path(os.path.relpath(file, base)).as_posix()
                names = (file.name, rel, display(access, file))
                if not glob or any(fnmatch.fnmatch(name, glob) for name in names):
                    yield file
        elif base.exists():
            yield base
        else:
            raise ToolError(f"there is no file or folder {path}; use list_files to see what exists")


def list_files(access: Access, path: str | None = ".", pattern: str | None = None) -> str:
    """Files under ``path`` (all roots by default), one per line, sorted."""
    files = list(itertools.islice(_files(access, path, pattern), WALK_LIMIT + 1))
    if not files:
        suffix = f" matching {pattern!r}" if pattern else ""
        return f"no files{suffix} there (ignored and dependency folders are left out)"
    shown = sorted(display(access, file) for file in files[:WALK_LIMIT])
    return _cap(
        shown[:LIST_LIMIT],
        access.output_chars,
        max(0, len(shown) - LIST_LIMIT),
        "files not shown; name a folder or a pattern to narrow the listing",
        counting_stopped=len(files) > WALK_LIMIT,
    )


def _cap(
    lines: list[str], budget: int, hidden: int, advice: str, *, counting_stopped: bool = False
) -> str:
    """``lines`` joined within ``budget`` characters, with a last line counting what was
    left out: ``hidden`` more beyond ``lines``, or at least that many when counting stopped."""
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > budget - 120:  # leave room for the note
            break
        out.append(line)
        used += len(line) + 1
    left = len(lines) - len(out) + hidden
    if counting_stopped:
        out.append(f"… at least {left} more {advice}")
    elif left > 0:
        out.append(f"… {left} more {advice}")
    return "\n".join(out)


def _quiet_text(access: Access, text_of: TextOf, file: Path) -> str | None:
    """A file's text for a search, or None for one it passes over without comment: a
    secret, a binary or oversized file, one linked from outside or inside ``.git``."""
    real = Path(os.path.realpath(file))
    if _owner(access, str(real)) is None or _in_git(access, str(real)):
        return None
    if not access.read_secrets and (is_secret(access, real) or is_secret(access, file)):
        return None
    try:
        return _current_text(access, text_of, real, "", "")
    except ToolError:
        return None


def search(
    access: Access,
    text_of: TextOf,
    pattern: str,
    path: str | None = None,
    glob: str | None = None,
    *,
    max_matches: int = SEARCH_MATCHES,
    time_budget_s: float = SEARCH_SECONDS,
) -> str:
    """``path:line: text`` for each line matching a Python regular expression, line by
    line. The time budget is checked between lines: one line's match cannot be interrupted,
    so lines are searched only in their first ``REGEX_LINE_CHARS`` characters."""
    if not pattern:
        raise ToolError("the search pattern is empty; give a regular expression")
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ToolError(
            f"the pattern is not a valid Python regular expression: {error}; "
            "escape ( ) [ ] { } . * + ? | \\ with a backslash to match them literally"
        ) from None
    named = resolve(access, path) if path and path.strip() not in ("", ".", "./") else None
    if named is not None and named.is_file():  # say why a file named outright is not searched
        _current_text(access, text_of, named, display(access, named), "")
    deadline = time.monotonic() + time_budget_s
    results: list[str] = []
    files = 0
    why_cut = ""
    for file in itertools.islice(_files(access, path, glob), WALK_LIMIT):
        files += 1
        text = _quiet_text(access, text_of, file)
        shown = display(access, file)
        for number, line in enumerate(text.split("\n") if text else (), 1):
            if regex.search(line, 0, REGEX_LINE_CHARS):
                snippet = line.strip()
                if len(snippet) > SEARCH_LINE_CHARS:
                    snippet = snippet[:SEARCH_LINE_CHARS] + "…"
                results.append(f"{shown}:{number}: {snippet}")
                if len(results) >= max_matches:
                    why_cut = f"stopped at {max_matches} matches"
                    break
            if number % 256 == 0 and time.monotonic() > deadline:
                break
        if not why_cut and time.monotonic() > deadline:
            why_cut = f"ran out of time ({time_budget_s:g} s)"
        if why_cut:
            break
    else:
        if files == WALK_LIMIT:
            why_cut = f"stopped after {WALK_LIMIT} files"
    if not results:
        note = f" ({why_cut}: the search was cut short)" if why_cut else ""
        return f"no match for {pattern!r} in {files} file{'' if files == 1 else 's'}{note}"
    out = _cap(results, access.output_chars, 0, "matches not shown; narrow the search")
    if why_cut:
        out += f"\n… the search {why_cut} and was cut; narrow it with path or glob"
    return out


def find_definition(access: Access, lookup: Lookup, name: str) -> str:
    """Where the workspace index says ``name`` is defined; finding nothing is an answer,
    not an error, since the index may lag or miss a language."""
    name = name.strip()
    if not name:
        raise ToolError("the name is empty; give a function, class or variable name")
    lines: list[str] = []
    for file, line, signature in lookup(name):
        real = os.path.realpath(file)
        owner = _owner(access, real)
        if owner is None or _in_git(access, real):
            continue
        entry = f"{display(access, Path(real))}:{line}: {signature.strip()}"
        if entry not in lines:
            lines.append(entry)
    if not lines:
        return f"no definition of {name} in the workspace index; try search"
    return _cap(lines, access.output_chars, 0, "definitions not shown")


# -- planning changes --


def _occurrences(text: str, needle: str, limit: int = 1000) -> list[int]:
    """Start offsets of ``needle``, overlapping ones included: ``aa`` in ``aaa`` is
    ambiguous even though ``str.count`` says 1."""
    found: list[int] = []
    at = text.find(needle)
    while at != -1 and len(found) < limit:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _near_miss(text: str, old_text: str) -> str:
    """Where ``old_text`` would match but for whitespace, or the closest line, quoted as
    the file has it, so the model can copy it exactly."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    want = [" ".join(line.split()) for line in old_text.split("\n")]
    while want and not want[0]:
        want.pop(0)
    while want and not want[-1]:
        want.pop()
    if not want:
        return ""
    squashed = [" ".join(line.split()) for line in lines]
    span = len(want)
    for start in range(len(squashed) - span + 1):
        if squashed[start] == want[0] and squashed[start : start + span] == want:
            actual = "\n".join(lines[start : start + min(span, 20)])
            return (
                f" It does match lines {start + 1}-{start + span} when whitespace and "
                f"indentation are ignored; they are exactly:\n{actual}\n"
                "Copy old_text from them exactly, indentation included."
            )
    close = difflib.get_close_matches(want[0], squashed[:50_000], n=1, cutoff=0.6)
    if close:
        number = squashed.index(close[0])
        return f" The closest line is {number + 1}:\n{lines[number]}"
    return ""


def plan_edit(
    access: Access, text_of: TextOf, path: str, old_text: str, new_text: str
) -> FileChange:
    """One exact replacement in the current text. Exact, because a fuzzy match edits a
    place the model did not mean; the error then shows where it nearly matched."""
    target = resolve(access, path, write=True)
    shown = display(access, target)
    if not old_text:
        raise ToolError(
            "old_text is empty; to make a new file use create_file, to add text to a file "
            "put a nearby line in old_text and that line plus the addition in new_text"
        )
    missing = f"there is no file {shown}; use create_file to make it"
    text = _current_text(access, text_of, target, shown, missing)
    found = _occurrences(text, old_text)
    if not found and "\r\n" in text and "\r" not in old_text:
        # The model writes "\n"; the file ends its lines with "\r\n".
        crlf = old_text.replace("\n", "\r\n")
        found = _occurrences(text, crlf)
        if found:
            old_text = crlf
            new_text = new_text.replace("\r\n", "\n").replace("\n", "\r\n")
    if not found:
        raise ToolError(
            f"old_text was not found in {shown}; it must match the current text exactly "
            f"(read_file shows it).{_near_miss(text, old_text)}"
        )
    if len(found) > 1:
        numbers = ", ".join(str(text.count("\n", 0, at) + 1) for at in found[:10])
        raise ToolError(
            f"old_text occurs {len(found)} times in {shown} (starting on lines {numbers}); "
            "include more of the surrounding lines so that it matches exactly once"
        )
    if old_text == new_text:
        raise ToolError("new_text is the same as old_text; nothing would change")
    at = found[0]
    after = text[:at] + new_text + text[at + len(old_text) :]
    return FileChange(path=target, display=shown, before=text, after=after)


def plan_create(access: Access, text_of: TextOf, path: str, content: str) -> FileChange:
    """A new file; refused when one exists, so that a create never silently replaces work."""
    if path.strip().endswith(("/", os.sep)):
        raise ToolError(f"{path} names a folder; name the file to create, e.g. {path}new.py")
    target = resolve(access, path, write=True)
    shown = display(access, target)
    if target.is_dir():
        raise ToolError(f"{shown} is a directory; name a file to create inside it")
    if os.path.lexists(target) or text_of(target) is not None:
        raise ToolError(f"{shown} already exists; use edit_file to change it")
    _refuse_secret(access, target, shown)
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ToolError(f"{display(access, parent)} is a file, so it cannot hold {shown}")
    if "\x00" in content:
        raise ToolError("the content contains NUL characters; agent tools write text only")
    if len(content.encode("utf-8", "surrogatepass")) > access.max_file_bytes:
        raise ToolError(f"the content is larger than {access.max_file_bytes} bytes; write less")
    return FileChange(path=target, display=shown, before=None, after=content)
