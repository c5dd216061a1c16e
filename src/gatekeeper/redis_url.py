"""What a `redis.url` names: one server, a Redis Cluster, or a Sentinel-managed master
(pure: parsing only).

    redis://[user:pass@]host:6379/0           one server (also rediss://, unix://)
    redis+cluster://[user:pass@]host:7000,host2:7001[,...]
                                              a cluster: any of its nodes, to discover it
    redis+sentinel://[user:pass@]host:26379,host2:26379[,...]/mymaster[/0]
                                              the master Sentinel names `mymaster`

Credentials are the data servers' (a cluster's nodes, a Sentinel group's master and
replicas); sentinels that require their own take `?sentinel_password=...` (and
`sentinel_username`).

`rediss+cluster://` and `rediss+sentinel://` are the same over TLS: every connection
(to each node, to the sentinels and to the master they name) uses TLS with the options
a `rediss://` URL takes in its query, as redis-py reads them: `ssl_ca_certs`,
`ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

Kind = Literal["single", "cluster", "sentinel"]
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}
SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True)}
# The TLS options of a rediss:// URL's query (redis-py's names), carried to every node.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
               "ssl_check_hostname")
SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")


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
    tls: bool = False
    tls_options: tuple[tuple[str, str], ...] = ()
    """TLS_OPTIONS given in the URL's query, as (name, value)."""

    def node_url(self, host: str, port: int) -> str:
        """A `redis://` (`rediss://` over TLS, with the TLS options) URL for one data
        server, with the URL's credentials and database."""
        auth = ""
        if self.password is not None:
            user = _quote(self.username or "")
            auth = f"{user}:{_quote(self.password)}@"
        query = "&".join(f"{name}={_quote(value)}" for name, value in self.tls_options)
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{_host(host)}:{port}/{self.db}" + \
            (f"?{query}" if query else "")

    def tls_kwargs(self) -> dict[str, str | bool]:
        """redis-py's keyword arguments for TLS (`ssl=True` and the options), or none."""
        if not self.tls:
            return {}
        kwargs: dict[str, str | bool] = {"ssl": True}
        for name, value in self.tls_options:
            kwargs[name] = value.lower() not in ("false", "0", "no") \
                if name == "ssl_check_hostname" else value
        return kwargs


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
    if scheme not in SCHEMES:
        raise ValueError("expected a redis://, rediss://, unix://, redis+cluster://, "
                         "redis+sentinel:// (or rediss+...) URL")
    kind, tls = SCHEMES[scheme]
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
    unknown = set(query) - {*SENTINEL_OPTIONS, *TLS_OPTIONS}
    if unknown:
        raise ValueError(f"unknown URL options: {', '.join(sorted(unknown))}")
    tls_options = tuple((name, query[name]) for name in TLS_OPTIONS if name in query)
    if tls_options and not tls:
        raise ValueError(f"TLS options on a {scheme}:// URL (rediss+... for TLS)")
    if query.get("ssl_cert_reqs", "required").lower() not in ("required", "optional",
                                                              "none"):
        raise ValueError("ssl_cert_reqs: expected required, optional or none")
    if kind == "cluster":
        if segments not in ([], ["0"]):
            raise ValueError("a cluster has only database 0: no path after the hosts")
        if set(query) & set(SENTINEL_OPTIONS):
            raise ValueError("sentinel options on a cluster URL")
        return Topology("cluster", nodes, username=username, password=password, tls=tls,
                        tls_options=tls_options)
    if not segments or len(segments) > 2:
        raise ValueError("expected /<master name>[/<db>] after the sentinels")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"bad database {segments[1]!r}")
        db = int(segments[1])
    return Topology("sentinel", nodes, segments[0], db, username, password,
                    query.get("sentinel_username"), query.get("sentinel_password"), tls,
                    tls_options)
