"""``python -m codenook.devtools.evalagent``: the same as ``codenook eval-agent``."""

from codenook.devtools.evalagent.cli import main

raise SystemExit(main())
