"""``codenook engine``: run the shared engine host, or ask the running one (status, stop)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from codenook.settings import Settings

API_KEY_ENV = "CODENOOK_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("run", "status", "stop"),
        default="run",
        help="run the host in the foreground (default), or show / stop the running one",
    )
    parser.add_argument(
        "--api",
        metavar="HOST:PORT",
        help="also serve the Anthropic Messages API and the OpenAI API over HTTP (loopback"
        " unless --allow-remote), e.g. --api 127.0.0.1:8377",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow --api on a non-loopback address"
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        default=API_KEY_ENV,
        help="environment variable holding the key API clients must send (Authorization:"
        f" Bearer or x-api-key); unset: no key checked. Default {API_KEY_ENV}",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="exit after this long without windows or API requests (default: never, for a"
        " host started by hand)",
    )
    parser.add_argument("--auto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="status: machine-readable output")


def command(args: argparse.Namespace, settings: Settings, problems: list[str]) -> int:
    for problem in problems:
        print(f"codenook: {problem}", file=sys.stderr)
    if args.action == "status":
        return _status(args.json)
    if args.action == "stop":
        return _stop()
    return _run(args, settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from codenook.hosting.daemon import ApiOptions, EngineDaemon
    from codenook.hosting.paths import UnsafeDirectory, host_paths

    api = None
    if args.api:
        host, _, port = args.api.rpartition(":")
        if not port.isdigit():
            print(f"codenook engine: --api wants HOST:PORT, not {args.api}", file=sys.stderr)
            return 2
        key = os.environ.get(args.api_key_env) or None
        api = ApiOptions(host.strip("[]") or "127.0.0.1", int(port), args.allow_remote, key)
    try:
        paths = host_paths()
    except UnsafeDirectory as exc:
        print(f"codenook engine: {exc}", file=sys.stderr)
        return 2
    daemon = EngineDaemon(settings, paths, idle_exit_s=args.idle_exit, api=api)
    code = daemon.run()
    # An auto-started host losing the race to another one is not an error for the window.
    return 0 if code == 3 and args.auto else code


def _ask(message: dict[str, Any]) -> dict[str, Any] | None:
    from codenook.hosting.client import control
    from codenook.hosting.paths import UnsafeDirectory, runtime_dir

    try:
        answer = control(message)
    except UnsafeDirectory as exc:
        print(f"codenook engine: {exc}", file=sys.stderr)
        return None
    except (OSError, ValueError) as exc:
        print(f"codenook engine: the host did not answer: {exc}", file=sys.stderr)
        return None
    if answer is None:
        print(f"codenook engine: no engine host runs (looked in {runtime_dir()})", file=sys.stderr)
    return answer


def _status(as_json: bool) -> int:
    answer = _ask({"op": "status"})
    if answer is None:
        return 1
    if answer.get("op") != "described":
        print(f"codenook engine: {answer.get('message', answer)}", file=sys.stderr)
        return 1
    answer.pop("op", None)
    if as_json:
        print(json.dumps(answer, indent=2))
        return 0
    windows = answer.get("windows") or []
    print(f"engine host pid {answer['pid']}, up {answer['uptimeS']:.0f} s: {answer['state']}")
    if answer.get("error"):
        print(f"  error: {answer['error']}")
    print(f"  model: {answer['model']}")
    print(f"  socket: {answer['socket']}")
    print(f"  API: {answer.get('api') or 'off'}")
    print(f"  windows: {len(windows)} attached ({answer['windowLanes']} with a lane of their own)")
    for window in windows:
        number, name, pid = window["number"], window["name"], window["pid"]
        print(f"    #{number} {name} (pid {pid}, lane {window['lane']})")
    rss = answer.get("rssBytes") or 0
    print(f"  memory (RSS): {rss / 2**20:.0f} MiB; preemptions: {answer.get('preemptions', 0)}")
    idle = answer.get("idleExitS")
    print(f"  exits when idle for: {f'{idle:g} s' if idle is not None else 'never (stop it)'}")
    return 0


def _stop() -> int:
    answer = _ask({"op": "shutdown"})
    if answer is None:
        return 1
    pid = answer.get("pid")
    if answer.get("op") != "stopping" or not isinstance(pid, int):
        print(f"codenook engine: {answer.get('message', answer)}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not _running(pid):
            print(f"codenook engine: stopped the host (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"codenook engine: the host (pid {pid}) is still ending", file=sys.stderr)
    return 1


def _running(pid: int) -> bool:
    """Alive and not a zombie (a host whose parent has not reaped it has ended all the same)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
