"""Agent tasks end to end: the real server over stdio, a scripted engine replaying fixed model
replies, and a client that behaves like an editor (versioned edits into its buffers, files it
has not opened loaded from disk first, questions answered as a user would).

The model's replies are fixed; what is tested is everything around them: the tools, the
confinement, the edits reaching the buffers (and never the disk), the questions, cancel,
undo, and the agent's place in the scheduler.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from robustness.rawclient import SERVE_FAKE, ModelClient

A_PY = "def old_name(x):\n    return x + 1\n\n\nprint(old_name(2))\n"
B_PY = "from a import old_name\n\nVALUE = old_name(41)\n"
CAPS = {
    "window": {"workDoneProgress": True},
    "workspace": {
        "applyEdit": True,
        "workspaceEdit": {"documentChanges": True, "resourceOperations": ["create", "delete"]},
    },
}


def call(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


class Editor(ModelClient):
    """Applies agent edits like an editor: loads unopened files from disk (didOpen) before
    editing them, creates and deletes files, answers questions from ``choices``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices: list[str | None] = []
        self.asked: list[dict[str, Any]] = []

    def _received(self, message: dict[str, Any]) -> None:
        if message.get("method") == "window/showMessageRequest" and "id" in message:
            with self._lock:
                self.messages.append(message)
                self.asked.append(message["params"])
            answer = self.choices.pop(0) if self.choices else None
            result = {"title": answer} if answer else None
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        super()._received(message)

    def _apply_workspace_edit(self, params: Any) -> dict[str, Any]:
        changes = params["edit"]["documentChanges"]
        for change in changes:
            kind = change.get("kind")
            path = Path(_path(change.get("uri") or change["textDocument"]["uri"]))
            if kind == "create":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")  # an editor creates the file, the text stays unsaved
                self.open_document(path.as_uri(), "")
            elif kind == "delete":
                if path.as_uri() in self.documents:
                    self.close_document(path.as_uri())
                path.unlink()
            elif path.as_uri() not in self.documents:
                self.open_document(path.as_uri(), path.read_text())
        rest = [c for c in changes if "kind" not in c]
        for change in rest:
            if change["textDocument"].get("version") is None:
                uri = change["textDocument"]["uri"]
                change["textDocument"]["version"] = self.documents[uri].version
        if not rest:
            return {"applied": True}
        return super()._apply_workspace_edit({"edit": {"documentChanges": rest}})


def _path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.py").write_text(A_PY)
    (root / "b.py").write_text(B_PY)
    (tmp_path / "outside.txt").write_text("secret outside\n")
    return root


def start(project: Path, replies: list[str], *, step_s: float = 0.0, **agent: Any) -> Editor:
    fake = {"replies": replies, "reply": "pass", "step_s": step_s, "n_ctx": 65536}
    client = Editor.spawn(SERVE_FAKE, fake=fake, cwd=str(project))
    assert isinstance(client, Editor)
    options: dict[str, Any] = {"completion": {"speculative": False}, "index": {"enabled": False}}
    # The scripted engine's tokens are bytes: room for a long conversation in its 4096.
    options["agent"] = {"stepTokens": 4000, **agent}
    reply = client.call(
        "initialize",
        {
            "processId": None,
            "rootUri": project.as_uri(),
            "capabilities": CAPS,
            "initializationOptions": options,
        },
    )
    assert (
        "codenook.agentTask"
        in reply["result"]["capabilities"]["executeCommandProvider"]["commands"]
    )
    client.notify("initialized", {})
    deadline = time.monotonic() + 10
    while client.call("codenook/stats", {})["result"]["state"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return client


def run_task(client: Editor, task: str, timeout: float = 30.0, **extra: Any) -> dict[str, Any]:
    answer = client.call(
        "workspace/executeCommand",
        {"command": "codenook.agentTask", "arguments": [{"task": task, **extra}]},
        timeout=timeout,
    )
    assert "result" in answer, answer
    return answer["result"]


def transcript(client: Editor, task_id: str) -> list[tuple[str, str]]:
    entries = []
    for m in client.messages:
        if m.get("method") == "codenook/agentTranscript" and m["params"]["taskId"] == task_id:
            entries.append((m["params"]["kind"], m["params"]["text"]))
    merged: list[tuple[str, str]] = []
    for kind, text in entries:  # model text streams in pieces
        if merged and kind == "model" and merged[-1][0] == "model":
            merged[-1] = ("model", merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def results(entries: list[tuple[str, str]], kind: str) -> list[str]:
    return [text for k, text in entries if k == kind]


@pytest.fixture
def closing() -> Any:
    clients: list[Editor] = []
    yield clients.append
    for client in clients:
        with contextlib.suppress(Exception):
            client.kill()


def test_a_whole_task_reads_searches_edits_two_files_runs_commands_and_finishes(
    project: Path, closing: Any
) -> None:
    replies = [
        call("read_file", path="a.py"),
        call("search", pattern=r"old_name\("),
        call("edit_file", path="a.py", old_text="def old_name(x):", new_text="def new_name(x):")
        + call(
            "edit_file", path="a.py", old_text="print(old_name(2))", new_text="print(new_name(2))"
        ),
        call("edit_file", path="b.py", old_text="import old_name", new_text="import new_name")
        + call(
            "edit_file",
            path="b.py",
            old_text="VALUE = old_name(41)",
            new_text="VALUE = new_name(41)",
        ),
        call("run_command", command="echo checked > ran.txt"),
        call("run_command", command="echo denied > denied.txt"),
        call("run_command", command="true allowed"),
        call("finish", summary="Renamed old_name to new_name in a.py and b.py."),
    ]
    client = start(project, replies, allowCommands=["true"])
    closing(client)
    a_uri = (project / "a.py").as_uri()
    b_uri = (project / "b.py").as_uri()
    client.open_document(a_uri, A_PY + "# unsaved line\n")  # the buffer, not the disk
    client.choices = ["Run", "Deny"]
    result = run_task(client, "rename old_name to new_name", uri=a_uri, version=1)

    assert result["status"] == "done", result
    assert result["summary"] == "Renamed old_name to new_name in a.py and b.py."
    assert result["steps"] == 8
    # Edits are in the editor's buffers, and the disk still holds the files as they were.
    assert client.documents[a_uri].text == (
        "def new_name(x):\n    return x + 1\n\n\nprint(new_name(2))\n# unsaved line\n"
    )
    assert client.documents[b_uri].text == "from a import new_name\n\nVALUE = new_name(41)\n"
    assert (project / "a.py").read_text() == A_PY
    assert (project / "b.py").read_text() == B_PY
    assert {c["path"]: c["original"] for c in result["changes"]} == {
        "a.py": A_PY + "# unsaved line\n",
        "b.py": B_PY,
    }
    entries = transcript(client, result["taskId"])
    shown = "\n".join(results(entries, "result"))
    assert "# unsaved line" in shown  # read_file read the buffer
    assert "a.py:1:" in shown and "b.py:3:" in shown  # search found both files
    # Run (asked, allowed), Deny (asked, refused), allow-listed (not asked).
    assert [q["message"].split("`")[1] for q in client.asked] == [
        "echo checked > ran.txt",
        "echo denied > denied.txt",
    ]
    assert [a["title"] for a in client.asked[0]["actions"]] == [
        "Run",
        "Always for this task",
        "Deny",
    ]
    assert (project / "ran.txt").read_text() == "checked\n"
    assert not (project / "denied.txt").exists()
    errors = results(entries, "error")
    assert any("did not allow running `echo denied > denied.txt`" in e for e in errors), errors
    assert any(r.startswith("exit status 0") for r in results(entries, "result"))
    assert entries[0] == ("task", "rename old_name to new_name")
    assert entries[-1] == ("summary", result["summary"])
    # Progress named the steps.
    reports = [
        m["params"]["value"].get("message")
        for m in client.messages
        if m.get("method") == "$/progress"
    ]
    assert any(r and r.startswith("reading a.py") for r in reports), reports
    assert any(r and "waiting for your OK to run" in r for r in reports), reports


def test_paths_that_leave_the_workspace_are_refused_and_told_to_the_model(
    project: Path, closing: Any
) -> None:
    (project / "link.txt").symlink_to(project.parent / "outside.txt")
    replies = [
        call("read_file", path="../outside.txt")
        + call("read_file", path=str(project.parent / "outside.txt"))
        + call("read_file", path="link.txt")
        + call("edit_file", path=".git/config", old_text="a", new_text="b")
        + call("create_file", path="../escape.py", content="x = 1\n")
        + call("read_file", path=".env")
        + call("no_such_tool", path="a.py")
        + "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</function>",
        call("finish", summary="nothing to do"),
    ]
    (project / ".env").write_text("TOKEN=hunter2\n")
    client = start(project, replies)
    closing(client)
    result = run_task(client, "read things you should not")
    assert result["status"] == "done" and result["changes"] == []
    entries = transcript(client, result["taskId"])
    errors = results(entries, "error")
    assert len(errors) == 8, errors
    text = "\n".join(results(entries, "result") + errors)
    assert "secret outside" not in text and "hunter2" not in text
    assert not (project.parent / "escape.py").exists()


@pytest.mark.parametrize("how", ["progress", "request"])
def test_cancel_mid_task_keeps_whole_edits_only_and_undo_restores(
    project: Path, closing: Any, how: str
) -> None:
    replies = [
        call("edit_file", path="a.py", old_text="def old_name(x):", new_text="def new_name(x):"),
        "x" * 2000,  # a long reply: the cancel lands in the middle of it
    ]
    client = start(project, replies, step_s=0.005)
    closing(client)
    a_uri = (project / "a.py").as_uri()
    client.open_document(a_uri, A_PY)
    msg_id = client.send_request(
        "workspace/executeCommand",
        {"command": "codenook.agentTask", "arguments": [{"task": "rename"}]},
    )
    deadline = time.monotonic() + 20
    while "def new_name" not in client.documents[a_uri].text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    token = next(
        m["params"]["token"]
        for m in client.messages
        if m.get("method") == "$/progress"
        and m["params"]["value"].get("kind") == "begin"
        and "agent" in m["params"]["value"].get("title", "")
    )
    if how == "progress":
        client.notify("window/workDoneProgress/cancel", {"token": token})
    else:  # VS Code cancels the command itself: the answer is still the task's result
        client.notify("$/cancelRequest", {"id": msg_id})
    result = client.reply(msg_id, timeout=10)["result"]
    assert result["status"] == "cancelled"
    assert client.documents[a_uri].text == A_PY.replace("def old_name", "def new_name")
    assert [c["path"] for c in result["changes"]] == ["a.py"]

    undo = client.call(
        "workspace/executeCommand",
        {"command": "codenook.agentUndo", "arguments": [{"taskId": result["taskId"]}]},
    )["result"]
    assert undo["restored"] == [a_uri] and undo["refused"] == []
    assert client.documents[a_uri].text == A_PY
    again = client.call(
        "workspace/executeCommand",
        {"command": "codenook.agentUndo", "arguments": [{"taskId": result["taskId"]}]},
    )
    assert "error" in again and "undone already" in again["error"]["message"]


def test_undo_refuses_a_file_changed_since_and_restores_the_others(
    project: Path, closing: Any
) -> None:
    replies = [
        call("edit_file", path="a.py", old_text="def old_name(x):", new_text="def new_name(x):")
        + call("edit_file", path="b.py", old_text="VALUE = old_name(41)", new_text="VALUE = 0")
        + call("create_file", path="pkg/new.py", content="NEW = 1\n"),
        call("finish", summary="done"),
    ]
    client = start(project, replies)
    closing(client)
    result = run_task(client, "change things")
    assert result["status"] == "done"
    created = project / "pkg" / "new.py"
    assert {c["path"]: c["created"] for c in result["changes"]} == {
        "a.py": False,
        "b.py": False,
        "pkg/new.py": True,
    }
    assert client.documents[created.as_uri()].text == "NEW = 1\n"
    b_uri = (project / "b.py").as_uri()
    client.change_document(b_uri, [{"text": "VALUE = 'mine'\n"}])  # the user edits b.py
    time.sleep(0.2)
    undo = client.call(
        "workspace/executeCommand", {"command": "codenook.agentUndo", "arguments": [{}]}
    )["result"]
    assert [r["path"] for r in undo["refused"]] == ["b.py"]
    assert "changed since the task" in undo["refused"][0]["reason"]
    assert client.documents[(project / "a.py").as_uri()].text == A_PY
    assert client.documents[b_uri].text == "VALUE = 'mine'\n"
    assert not created.exists()
    assert "b.py (changed since the task)" in undo["message"]


def test_a_keystroke_completion_preempts_an_agent_step_and_the_task_ends_the_same(
    project: Path, closing: Any
) -> None:
    replies = [
        "thinking about it " * 12 + call("read_file", path="a.py"),
        call("finish", summary="read it"),
    ]
    alone = start(project, replies, step_s=0.004)
    closing(alone)
    expected = run_task(alone, "look at a.py")
    expected_entries = transcript(alone, expected["taskId"])

    client = start(project, replies, step_s=0.004)
    closing(client)
    a_uri = (project / "a.py").as_uri()
    client.open_document(a_uri, A_PY)
    msg_id = client.send_request(
        "workspace/executeCommand",
        {"command": "codenook.agentTask", "arguments": [{"task": "look at a.py"}]},
    )
    deadline = time.monotonic() + 10
    while not any(
        m.get("method") == "codenook/agentTranscript" and m["params"]["kind"] == "model"
        for m in client.messages
    ):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    completion = client.call(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": a_uri},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    assert "result" in completion, completion
    result = client.reply(msg_id, timeout=30)["result"]
    stats = client.call("codenook/stats", {})["result"]
    assert stats.get("preemptions", 0) >= 1, stats
    assert result["status"] == expected["status"] == "done"
    assert transcript(client, result["taskId"]) == expected_entries


def test_bad_arguments_and_a_disabled_agent_are_clear_errors(project: Path, closing: Any) -> None:
    client = start(project, [call("finish", summary="ok")])
    closing(client)
    for args in ([], [{}], [{"task": ""}], [{"task": 3}], ["text"]):
        answer = client.call(
            "workspace/executeCommand", {"command": "codenook.agentTask", "arguments": args}
        )
        assert "error" in answer and "task" in answer["error"]["message"], answer
    undo = client.call(
        "workspace/executeCommand", {"command": "codenook.agentUndo", "arguments": [{}]}
    )
    assert "error" in undo and "no agent task" in undo["error"]["message"]
    # The server keeps serving.
    assert client.call("codenook/stats", {})["result"]["state"] == "idle"


def test_the_agent_commands_are_not_offered_when_the_agent_is_off(project: Path) -> None:
    client = Editor.spawn(SERVE_FAKE, fake={"reply": "x"}, cwd=str(project))
    try:
        reply = client.call(
            "initialize",
            {
                "processId": None,
                "rootUri": project.as_uri(),
                "capabilities": CAPS,
                "initializationOptions": {"agent": {"enabled": False}},
            },
        )
        commands = reply["result"]["capabilities"]["executeCommandProvider"]["commands"]
        assert "codenook.agentTask" not in commands and "codenook.runAction" in commands
    finally:
        client.kill()


def test_the_embedded_model_runs_a_task_to_a_clean_end_within_its_budget(
    project: Path, closing: Any
) -> None:
    """The real server and the real SmolLM2 (no tool template: the fallback format): whatever
    the small model writes, the task ends with an answer, inside its step budget."""
    client = Editor.spawn([sys.executable, "-m", "codenook", "serve"], cwd=str(project))
    closing(client)
    assert isinstance(client, Editor)
    client.call(
        "initialize",
        {
            "processId": None,
            "rootUri": project.as_uri(),
            "capabilities": CAPS,
            "initializationOptions": {
                "completion": {"speculative": False},
                "index": {"enabled": False},
                "agent": {"maxSteps": 3, "stepTokens": 96},
            },
        },
        timeout=60,
    )
    client.notify("initialized", {})
    client.choices = ["Deny"] * 10
    result = run_task(client, "Rename old_name to new_name in a.py.", timeout=240)
    assert result["status"] in ("done", "budget"), result
    assert 1 <= result["steps"] <= 3
    usage = result["usage"]
    assert len(usage) == result["steps"]
    assert all(u["generatedTokens"] <= 96 for u in usage)
    # After the first step each step reads only what the conversation gained.
    for step in usage[1:]:
        assert step["prefilledTokens"] == step["newTokens"], usage
    entries = transcript(client, result["taskId"])
    assert entries[0][0] == "task" and entries[-1] == ("summary", result["summary"])
