"""``python -m recsec_lib`` is the same as the ``recsec`` command."""

from recsec_lib.cli import main

raise SystemExit(main())
