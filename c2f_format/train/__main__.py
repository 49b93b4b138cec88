"""`python -m c2f_format.train`: the `c2f-train` command."""

from .cli import main

raise SystemExit(main())
