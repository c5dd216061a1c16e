"""redis_url.parse: what a `redis.url` names, as a table; malformed URLs are refused
with their reason, and a password never appears in the error."""

from __future__ import annotations

import pytest

from gatekeeper.config import ConfigError
from gatekeeper.redis_url import Topology, parse, redacted
from tests.conftest import make_config


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://localhost:6379/0", Topology("single")),
    ("rediss://h:6380", Topology("single")),
    ("unix:///tmp/redis.sock", Topology("single")),
    ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
     Topology("cluster", (("10.0.0.1", 7000), ("10.0.0.2", 7001)))),
    ("redis+cluster://:s3cret@h1,h2:7002/",
     Topology("cluster", (("h1", 6379), ("h2", 7002)), password="s3cret")),
    ("redis+cluster://[::1]:7000", Topology("cluster", (("::1", 7000),))),
    ("redis+sentinel://s1:26379,s2:26380/mymaster/2",
     Topology("sentinel", (("s1", 26379), ("s2", 26380)), "mymaster", 2)),
    ("redis+sentinel://app:pw@s1/mymaster?sentinel_password=sp",
     Topology("sentinel", (("s1", 26379),), "mymaster", 0, "app", "pw", None, "sp")),
    ("rediss+cluster://h:7000?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key",
     Topology("cluster", (("h", 7000),), tls=True, tls_options=(
         ("ssl_ca_certs", "/ca.pem"), ("ssl_certfile", "/c.pem"), ("ssl_keyfile", "/c.key")))),
    ("rediss+sentinel://s1/m/1?ssl_cert_reqs=none&sentinel_password=sp",
     Topology("sentinel", (("s1", 26379),), "m", 1, sentinel_password="sp", tls=True,
              tls_options=(("ssl_cert_reqs", "none"),))),
], ids=["single", "tls", "unix", "cluster", "cluster-password-default-port",
        "cluster-ipv6", "sentinel-db", "sentinel-credentials", "tls-cluster",
        "tls-sentinel"])
def test_urls_name_their_topology(url: str, expected: Topology) -> None:
    """Each URL form gives its kind, nodes, master name, database and credentials."""
    assert parse(url) == expected


@pytest.mark.parametrize(("url", "reason"), [
    ("redis+cluster://h:7000/3", "only database 0"),
    ("redis+cluster://h:notaport", "bad port"),
    ("redis+cluster://h:70000", "bad port"),
    ("redis+cluster://h1,,h2", "empty host"),
    ("redis+sentinel://s1:26379", "master name"),
    ("redis+sentinel://s1/m/x", "bad database"),
    ("redis+sentinel://s1/m?ssl=1", "unknown URL options"),
    ("redis+cluster://h:7000?ssl_ca_certs=/ca.pem", "TLS options on a redis\\+cluster"),
    ("rediss+cluster://h:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ("rediss+cluster://h:7000?ssl_verify=1", "unknown URL options"),
    ("http://h:6379", "expected a redis"),
], ids=["cluster-db", "port-text", "port-range", "empty-host", "no-master",
        "bad-db", "unknown-option", "tls-options-without-tls", "bad-cert-reqs",
        "unknown-tls-option", "http"])
def test_malformed_urls_are_refused_with_their_reason(url: str, reason: str) -> None:
    """A URL that cannot be read one way only is refused, saying why."""
    with pytest.raises(ValueError, match=reason):
        parse(url)


def test_node_url_carries_credentials_and_database() -> None:
    """A data server's URL (for the lean lookup connection) keeps the credentials."""
    topology = parse("redis+sentinel://app:p%40ss@s1/m/3")
    assert topology.node_url("10.0.0.9", 6380) == "redis://app:p%40ss@10.0.0.9:6380/3"


def test_tls_node_url_and_client_options_carry_the_tls_options() -> None:
    """Over TLS, each node's URL is rediss:// with the TLS options (so the lean lookup
    connection reads them as from a rediss:// URL), and redis-py's clients get the same
    as keyword arguments."""
    topology = parse("rediss+cluster://:pw@h:7000?ssl_ca_certs=/a%20b/ca.pem"
                     "&ssl_check_hostname=false")
    assert topology.node_url("10.0.0.9", 7001) == (
        "rediss://:pw@10.0.0.9:7001/0?ssl_ca_certs=%2Fa%20b%2Fca.pem"
        "&ssl_check_hostname=false")
    assert topology.tls_kwargs() == {"ssl": True, "ssl_ca_certs": "/a b/ca.pem",
                                     "ssl_check_hostname": False}
    assert parse("redis+cluster://h:7000").tls_kwargs() == {}


def test_config_error_names_the_key_but_never_the_password(tmp_path: object) -> None:
    """A bad store URL is a ConfigError naming `redis.url`, its password masked."""
    with pytest.raises(ConfigError) as caught:
        make_config("http://127.0.0.1:1", tmp_path,  # type: ignore[arg-type]
                    redis={"url": "redis+cluster://u:topsecret@h:7000/5"})
    assert "redis.url" in str(caught.value)
    assert "topsecret" not in str(caught.value)
    assert redacted("redis://u:topsecret@h/0") == "redis://u:***@h/0"
