"""What a `redis.url` names: one server, a Redis Cluster, or a Sentinel-managed master
(pure: parsing only).

    redis://[user:pass@]host:6379/0           one server (also rediss://, unix://)
    redis+cluster://[user:pass@]host:7000,host2:7001[,...]
                                              a cluster: any of its nodes, to discover it
    redis+sentinel://[user:pass@]host:26379,host2:26379[,...]/mymaster[/0]
                                              the master Sentinel names `mymaster`

Credentials are the data servers' (a cluster's nodes, a Sentinel group's master and
replicas); sentinels that require their own take `?sentinel_password=...` (and
`sentinel_username`). TLS (`rediss+cluster`, `rediss+sentinel`) is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

Kind = Literal["single", "cluster", "sentinel"]
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}


@dataclass(frozen=True, slots=True)
class Topology:
    """The servers a URL names and how to reach its data."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def node_url(self, host: str, port: int) -> str:
        """A plain `redis://` URL for one data server, with the URL's credentials and
        database."""
        auth = ""
        if self.password is not None:
            user = _quote(self.username or "")
            auth = f"{user}:{_quote(self.password)}@"
        return f"redis://{auth}{_host(host)}:{port}/{self.db}"


def _quote(text: str) -> str:
    return quote(text, safe="")


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _nodes(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    found: list[tuple[str, int]] = []
    for part in hosts.split(","):
        if not part:
            raise ValueError("an empty host in the list")
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = part.partition(":")
        if not host:
            raise ValueError(f"no host in {part!r}")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ValueError(f"bad port in {part!r}") from None
        if not 0 < port < 65536:
            raise ValueError(f"bad port in {part!r}")
        found.append((host, port))
    return tuple(found)


def redacted(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, to be shown in errors."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.partition("@")
    if not sep or not at or ":" not in userinfo.split("/")[0]:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}"


def parse(url: str) -> Topology:
    """The topology `url` names; ValueError (its reason) when malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("redis", "rediss", "unix"):
        return Topology("single")
    if scheme in ("rediss+cluster", "rediss+sentinel"):
        raise ValueError(f"{scheme}:// (TLS to a cluster or through Sentinel) is not supported")
    if scheme not in ("redis+cluster", "redis+sentinel"):
        raise ValueError("expected a redis://, rediss://, unix://, redis+cluster:// or "
                         "redis+sentinel:// URL")
    kind: Kind = "cluster" if scheme == "redis+cluster" else "sentinel"
    # urlsplit cannot read a host list: the part before '/' is taken as it stands.
    netloc = parts.netloc
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    nodes = _nodes(netloc, DEFAULT_PORTS[kind])
    segments = [unquote(s) for s in parts.path.split("/") if s]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise ValueError(f"unknown URL options: {', '.join(sorted(unknown))}")
    if kind == "cluster":
        if segments not in ([], ["0"]):
            raise ValueError("a cluster has only database 0: no path after the hosts")
        if query:
            raise ValueError("sentinel options on a cluster URL")
        return Topology("cluster", nodes, username=username, password=password)
    if not segments or len(segments) > 2:
        raise ValueError("expected /<master name>[/<db>] after the sentinels")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"bad database {segments[1]!r}")
        db = int(segments[1])
    return Topology("sentinel", nodes, segments[0], db, username, password,
                    query.get("sentinel_username"), query.get("sentinel_password"))
