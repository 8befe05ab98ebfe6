"""``python -m codenook.devtools.evalcontext``: the same as ``codenook eval-context``."""

from codenook.devtools.evalcontext.cli import main

raise SystemExit(main())
