"""``codenook eval-agent``: whether the agent gets small real tasks done, and what it costs.

Unit tests of the agent replay fixed model replies, which proves the machinery but says
nothing about a model's use of it. This harness gives a real model the whole loop (the same
``Agent``, tools and engine lane an editor's task gets) on a tiny Python project shipped
with the package (``fixture/``: a shop with prices, a cart, a receipt and a unittest
suite), one fresh copy per task, and judges each result by its code alone: a rename across
files, a parameter added with its callers updated, a deliberately broken function fixed
without touching its test. Next to the verdicts it reports each step's prompt, prefilled
and new tokens, because an agent re-sends its whole conversation every step and only a
working cache keeps that affordable.

``find_definition`` is answered from a ``WorkspaceIndex`` built on the task's copy (a few
files: milliseconds) and updated after every applied edit, as the editor's index would be,
so the model can use that tool as it would in an editor.

Modules: ``tasks`` (the task texts and checks), ``port`` (the loop's ``Port`` on a plain
folder), ``run`` (engine host, one run per task), ``report`` (table and JSON), ``cli``.
"""

from codenook.devtools.evalagent.cli import add_arguments, command, main

__all__ = ["add_arguments", "command", "main"]
