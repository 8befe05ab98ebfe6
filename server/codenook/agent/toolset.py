"""The agent's tools as the model sees them, and the checking of the arguments it sends.

Every argument arrives as text from the model; a missing, unknown or malformed one is a
``ToolError`` whose message tells the model what the tool expects, so it can try again. What
the tools do lives in ``agent.workspace`` (reading, confinement) and ``agent.commands``.
"""

from __future__ import annotations

from collections.abc import Mapping

from codenook.agent.prompts import Param, ToolSpec
from codenook.agent.workspace import ToolError

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_files",
        "List the project's files (ignored and dependency folders left out).",
        (
            Param("path", "string", "Folder to list, relative to the project root.", False),
            Param("pattern", "string", "Glob the names must match, such as *.py.", False),
        ),
    ),
    ToolSpec(
        "read_file",
        "Read a file as it is in the editor (unsaved changes included), or some of its lines.",
        (
            Param("path", "string", "File path, relative to the project root."),
            Param("start_line", "integer", "First line to read (1-based).", False),
            Param("end_line", "integer", "Last line to read (inclusive).", False),
        ),
    ),
    ToolSpec(
        "search",
        "Search the project's files with a regular expression; answers path:line: text.",
        (
            Param("pattern", "string", "Python regular expression."),
            Param("path", "string", "Folder or file to search in.", False),
            Param("glob", "string", "Only files whose names match this glob.", False),
        ),
    ),
    ToolSpec(
        "find_definition",
        "Find where a function, class, type or constant is defined in the project.",
        (Param("name", "string", "The name, without module or class prefix."),),
    ),
    ToolSpec(
        "edit_file",
        "Replace one exact, unique piece of a file's current text with new text.",
        (
            Param("path", "string", "File path, relative to the project root."),
            Param("old_text", "string", "Text to replace, copied exactly; must occur once."),
            Param("new_text", "string", "The replacement."),
        ),
    ),
    ToolSpec(
        "create_file",
        "Create a new file with the given content (fails if it exists: use edit_file).",
        (
            Param("path", "string", "New file's path, relative to the project root."),
            Param("content", "string", "The whole content of the file."),
        ),
    ),
    ToolSpec(
        "run_command",
        "Run a shell command in the project root (the user may be asked first); answers its"
        " exit status and output.",
        (Param("command", "string", "The command line, e.g. pytest -x tests/test_app.py"),),
    ),
    ToolSpec(
        "finish",
        "End the task: say what you changed, or why the task cannot be done.",
        (Param("summary", "string", "A few sentences for the user."),),
    ),
)

BY_NAME: dict[str, ToolSpec] = {tool.name: tool for tool in TOOLS}

Arguments = dict[str, str | int | None]


def check_arguments(name: str, given: Mapping[str, str]) -> Arguments:
    """The call's arguments typed by its tool's parameters, or a ToolError saying what's wrong."""
    tool = BY_NAME.get(name)
    if tool is None:
        known = ", ".join(BY_NAME)
        raise ToolError(f"there is no tool named {name!r}; the tools are: {known}")
    expected = {p.name: p for p in tool.params}
    unknown = [key for key in given if key not in expected]
    if unknown:
        raise ToolError(
            f"{name} has no parameter {', '.join(map(repr, unknown))}; its parameters are: "
            + ", ".join(expected)
        )
    typed: Arguments = {}
    for param in tool.params:
        value = given.get(param.name)
        if value is None:
            if param.required:
                raise ToolError(f"{name} needs the parameter {param.name!r}: {param.description}")
            typed[param.name] = None
            continue
        if param.kind == "integer":
            try:
                typed[param.name] = int(value.strip())
            except ValueError:
                raise ToolError(
                    f"{name}: {param.name} must be a whole number, got {value!r}"
                ) from None
        else:
            typed[param.name] = value
    return typed


def describe_call(name: str, args: Mapping[str, str | int | None]) -> str:
    """One line naming the call, for the transcript: long values are shortened."""
    shown = []
    for key, value in args.items():
        if value is None:
            continue
        text = str(value).replace("\n", "⏎")
        shown.append(f"{key}={text[:60] + '…' if len(text) > 60 else text}")
    return f"{name} {' '.join(shown)}".strip()
