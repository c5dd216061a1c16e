"""`python -m gatekeeper` runs the command line."""

from __future__ import annotations

from gatekeeper.cli import main

raise SystemExit(main())
