"""The `gatekeeper` command's exit codes and its usage error (exit 2)."""

from __future__ import annotations

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument found after parsing (exit 2, message on stderr)."""
