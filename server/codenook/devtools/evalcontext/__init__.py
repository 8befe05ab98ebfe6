"""``codenook eval-context``: how often the prompt holds what the missing code needs.

The harness indexes a repository, cuts holes in its code and builds, for each hole, the
context a completion at that spot would get (``context.build_completion_context`` for the
current file, ``crossfile.build_crossfile_context`` for the rest of the workspace), at each
token budget. A hole is a line that uses a name defined in exactly one *other* file of the
repository (in the same language family); the line's text after its indentation is removed
and the cursor put there. The hole is *recalled* when the cross-file chunks contain the
defining line of that name (its signature). Recall is reported per language and per budget,
with the time each context took.

A second part types on a 10,000-line file made of the repository's own code (warm index,
realistic keystrokes) and reports the per-keystroke cost of the incremental tree update,
``context.build_completion_context`` and the cross-file assembly, and how many keystrokes
changed the chunk list.

Token counts come from the default model's tokenizer (SmolLM2, loaded vocabulary and weights
in a few hundred milliseconds) unless ``--tokenizer approx`` is given (3 characters a token).

Modules: ``holes`` (cutting and scoring holes), ``keystrokes`` (typing on a big file),
``report`` (one repository's numbers and lines), ``cli`` (options, token counter, command).
"""

from codenook.devtools.evalcontext.cli import add_arguments, command, main

__all__ = ["add_arguments", "command", "main"]
