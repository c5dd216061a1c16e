"""The open-file limit: each client connection, upstream connection and store connection
is one file descriptor, and the soft RLIMIT_NOFILE is often 1024, which a thousand clients
and a full upstream pool overrun (new connections are then refused: EMFILE).

At start-up the soft limit is raised towards the hard limit (a process may do so without
privileges), to at most FD_TARGET, and `fd_limit_low` is logged when it stays below what
FD_CLIENTS concurrent clients need.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import structlog

from gatekeeper.config import Config

FD_TARGET = 65_536      # plenty for a proxy; unbounded limits make fd tables and loops big
FD_CLIENTS = 1_000      # concurrent client connections the check plans for
POOL_CONNECTIONS = 256  # upstream.Upstream's connection limit per upstream or webhook
FD_RESERVE = 128        # store connections, logs, metrics files, listeners, loop internals


def fd_need(config: Config, clients: int = FD_CLIENTS) -> int:
    """File descriptors for `clients` concurrent connections: one each, plus every upstream
    and webhook pool full, plus a reserve for the store, logs and the loop."""
    pools = len(config.upstreams) + len(config.webhooks)
    return clients + POOL_CONNECTIONS * pools + FD_RESERVE


@dataclass(frozen=True, slots=True)
class FdLimit:
    """The open-file limit found and left at start-up (-1: unlimited)."""

    before: int
    soft: int
    hard: int
    needed: int

    @property
    def low(self) -> bool:
        """True when fewer descriptors than `needed` may be open."""
        return self.soft != resource.RLIM_INFINITY and self.soft < self.needed


def check_fd_limit(config: Config, log: structlog.typing.FilteringBoundLogger
                   ) -> FdLimit:
    """Raise the soft RLIMIT_NOFILE towards min(hard, FD_TARGET); warn `fd_limit_low` when
    it stays below what FD_CLIENTS concurrent clients need."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = FD_TARGET if hard == resource.RLIM_INFINITY else min(hard, FD_TARGET)
    soft = before
    if before != resource.RLIM_INFINITY and before < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError):
            pass  # reported below when it matters
    result = FdLimit(before, soft, hard, fd_need(config))
    if result.low:
        room = max(0, soft - (result.needed - FD_CLIENTS))
        log.warning("fd_limit_low", limit=soft, hard_limit=hard, needed=result.needed,
                    message=f"at most {soft} files may be open: about {room} concurrent "
                    f"client connections with the upstream pools full, where "
                    f"{FD_CLIENTS} need {result.needed}; beyond that new connections "
                    "are refused. Raise the limit (ulimit -n, systemd LimitNOFILE=).")
    elif soft != before:
        log.info("fd_limit_raised", previous=before, limit=soft)
    return result
