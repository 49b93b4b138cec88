"""`python -m c2f_format.train`: the `c2f-train` command."""

from .loop import main

raise SystemExit(main())
