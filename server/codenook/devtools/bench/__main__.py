"""``python -m codenook.devtools.bench``: the same as ``codenook bench``."""

from codenook.devtools.bench.cli import build_parser, main

raise SystemExit(main(build_parser().parse_args()))
