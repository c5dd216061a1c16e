"""What `gatekeeper config check` warns about: settings that are valid but that an
operator should have chosen knowingly (pure, over a validated Config)."""

from __future__ import annotations

import ipaddress

from gatekeeper.config import Config


def _public(host: str) -> bool:
    """True when a listener host is not loopback-only."""
    if host in ("localhost", ""):
        return host == ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return True


def config_warnings(config: Config, *, stop_timeout: float | None = None,
                    open_files: int | None = None, open_files_needed: int | None = None
                    ) -> list[str]:
    """Warnings for `config`. `stop_timeout`: the seconds the service manager gives a
    stop (systemd TimeoutStopSec, a container's stop grace period); `open_files` and
    `open_files_needed`: the process's open-file limit and what the config needs."""
    out: list[str] = []
    for i, upstream in enumerate(config.upstreams):
        where = f"upstreams[{i}] ({upstream.name})"
        if upstream.on_block == "monitor":
            out.append(f"{where}: on_block monitor forwards blocked destinations (logged "
                       "and counted only)")
        if upstream.credentials and upstream.scope_header:
            out.append(f"{where}: X-Gatekeeper-Scope is accepted on a mount whose "
                       "credentials map to scopes; any caller of the mount can add "
                       "scopes (scope_header: false keeps to the credentials')")
        if upstream.unknown_writes == "forward":
            out.append(f"{where}: unknown_writes forward sends writes on no known send "
                       "route unscreened")
    if config.store.on_error == "open":
        out.append("store.on_error open: while the store is unavailable, sends are "
                   "forwarded unchecked (blocked numbers included)")
    if config.proxy.on_invalid == "forward":
        out.append("proxy.on_invalid forward: destinations that are not possible numbers "
                   "are forwarded")
    if config.admin.key is None:
        out.append(f"no admin key ({config.admin.key_source}): the admin API refuses "
                   "every call")
    if _public(config.admin.listen.host):
        out.append(f"admin.host {config.admin.listen.host!r} is not loopback: the admin "
                   "API (plain HTTP) is reachable from the network; put it behind TLS "
                   "and a firewall")
    if stop_timeout is not None and stop_timeout < config.stop_seconds:
        out.append(f"the stop timeout ({stop_timeout:g} s) is shorter than "
                   f"proxy.drain_timeout plus the longest upstream timeout "
                   f"({config.stop_seconds:g} s): a stop may kill requests whose upstream "
                   "exchange has started, so clients cannot tell whether they were sent")
    if open_files is not None and open_files_needed is not None \
            and 0 <= open_files < open_files_needed:
        out.append(f"the open-file limit ({open_files}) is below what 1,000 concurrent "
                   f"clients with full upstream pools need ({open_files_needed}): raise "
                   "it (systemd LimitNOFILE=, docker --ulimit nofile=)")
    return out
