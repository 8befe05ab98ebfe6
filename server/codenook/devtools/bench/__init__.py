"""``codenook bench``: replay a recorded typing session through the real server and measure it.

The benchmark is an editor without a screen. It starts ``codenook serve`` as a subprocess and
talks JSON-RPC to it over stdio: ``initialize`` with the mode's settings, ``didOpen``, then one
incremental ``didChange`` per keystroke and, when the typist pauses longer than the debounce, a
``textDocument/inlineCompletion`` request; a request still in flight when a newer one is sent
is cancelled with ``$/cancelRequest``. Each mode gets a fresh server, so the modes share
nothing but the trace. ``llama-server`` (llama.cpp's own HTTP server) can be replayed the same
way against its ``/infill`` endpoint for comparison.

Only the standard library is used here (the LSP layer alone imports pygls, and the engine
alone imports llama.cpp): what is measured is the server process, not this client.

Modules, each importing only those listed before it: ``errors``; ``trace`` (format, buffer,
recorder, replay plan); ``rpc`` (the JSON-RPC client); ``replay`` (typing in real time);
``targets`` (codenook over LSP, llama-server over HTTP); ``report``; ``run`` (one server per
mode); ``assist`` (``codenook bench assist``); ``background`` (an RSS sampler and an
Anthropic-API conversation, run beside a replay); ``shared`` (``codenook bench shared``: one
shared engine host for several windows and an agent); ``cli`` (options, ``record``,
dispatch).
"""

from codenook.devtools.bench.cli import add_arguments, build_parser, main

__all__ = ["add_arguments", "build_parser", "main"]
