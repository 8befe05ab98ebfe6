"""The ``run_command`` tool: a shell command the user allowed, run as the user.

A command runs through ``/bin/sh -c`` with the user's rights and environment, in a
workspace folder: it can do anything the user can, which is why each one needs the user's
OK unless it matches their allow-list (``command_allowed``). The allow-list matches plain
commands only: a ``;``, a pipe or a redirection can append anything to an allowed prefix.

The command gets a session (and process group) of its own, so that a timeout or a cancel
ends everything it started, not just the shell; processes it leaves behind when it exits
are ended too, since nobody would otherwise stop them. Its output is read as it comes and
kept only at its head and tail, so a command that prints gigabytes costs no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from codenook.agent.workspace import ToolError

# What lets one command line run another, or write files, beyond the allowed prefix.
SHELL_CONTROL = (";", "&", "|", "`", "$(", ">", "<", "\n", "\r")
POLL_S = 0.1
TERM_GRACE_S = 1.0  # between SIGTERM and SIGKILL
DRAIN_S = 1.0  # how long output is read after the process group is gone


def command_allowed(command: str, allow: Sequence[str]) -> bool:
    """Whether ``command`` may run without asking: it equals an allow-list entry or extends
    one with arguments. Anything with shell control characters always asks."""
    command = command.strip()
    if not command or any(mark in command for mark in SHELL_CONTROL):
        return False
    for entry in allow:
        entry = entry.strip()
        if entry and (command == entry or command.startswith(entry + " ")):
            return True
    return False


class _Output:
    """The head and tail of a stream, within about ``chars`` characters."""

    def __init__(self, chars: int) -> None:
        self.keep = max(chars, 2) * 2  # bytes per end: UTF-8 takes up to 4 bytes a character
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.keep:
            extra = len(self.tail) - self.keep
            del self.tail[:extra]
            self.dropped += extra

    def text(self, chars: int) -> str:
        """The output within ``chars`` characters, its middle cut (the head says what ran,
        the tail how it ended); bytes dropped while reading count as characters."""
        half = max(chars // 2, 1)
        if not self.dropped:
            whole = bytes(self.head + self.tail).decode("utf-8", errors="replace")
            if len(whole) <= chars:
                return whole
            head, tail, cut = whole[:half], whole[-half:], len(whole) - 2 * half
        else:
            head = self.head.decode("utf-8", errors="replace")
            tail = self.tail.decode("utf-8", errors="replace")
            cut = len(head) + self.dropped + len(tail) - 2 * half
            head, tail = head[:half], tail[-half:]
        return f"{head}\n… {cut} characters cut …\n{tail}"


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. On Linux zombies do not count: an orphan
    waits to be reaped by init, which in a container may take its time or never happen."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user: still there
        return True
    if not os.path.isdir("/proc/self"):
        return True
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _end_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left a second later."""
    pgid = process.pid
    _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TERM_GRACE_S
    while loop.time() < deadline and (process.returncode is None or _group_alive(pgid)):
        await asyncio.sleep(0.02)
    if process.returncode is None or _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
    await process.wait()


async def _read(stream: asyncio.StreamReader, output: _Output) -> None:
    while chunk := await stream.read(65536):
        output.add(chunk)


async def run_command(
    command: str,
    cwd: Path,
    timeout_s: float,
    output_chars: int,
    cancelled: Callable[[], bool] | None = None,
) -> str:
    """How the command ended, then its output (stdout and stderr merged, as a terminal
    shows them). ``cancelled`` is polled every ``POLL_S``; cancelling the calling task also
    kills the command."""
    try:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        raise ToolError(f"the command could not be started: {error}") from None
    assert process.stdout is not None
    output = _Output(output_chars)
    reader = asyncio.ensure_future(_read(process.stdout, output))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    outcome = ""
    try:
        # The exit status is polled rather than awaited: ``wait`` may not return while a
        # child left behind still holds the output pipe open.
        while process.returncode is None:
            if cancelled is not None and cancelled():
                outcome = "cancelled"
                break
            if loop.time() >= deadline:
                outcome = f"timed out after {timeout_s:g} s"
                break
            await asyncio.wait({reader}, timeout=POLL_S)
            if reader.done():
                await asyncio.sleep(0.01)  # end of output: the exit follows at once
        if outcome or _group_alive(process.pid):
            await _end_group(process)
        await asyncio.wait({reader}, timeout=DRAIN_S)
    except BaseException:
        _signal_group(process.pid, signal.SIGKILL)
        raise
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    if not outcome:
        status = process.returncode
        assert status is not None
        outcome = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
    text = output.text(output_chars)
    return f"{outcome}\n{text}" if text else f"{outcome}\n(no output)"
