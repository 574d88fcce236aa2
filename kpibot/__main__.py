"""``python -m kpibot``: the same command line as ``kpibot``."""

from kpibot.cli.main import main

raise SystemExit(main())
