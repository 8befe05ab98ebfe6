from codenook.cli import main

raise SystemExit(main())
