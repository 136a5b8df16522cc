"""``python -m callserver`` is the ``callserver`` command."""

from callserver.cli import main

raise SystemExit(main())
