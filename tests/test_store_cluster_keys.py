"""The key layout on a cluster (store/keys.py): every key of one scope, and everything a
script of that scope touches, hashes to one slot; the single-server layout is unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from gatekeeper.store import Keys
from gatekeeper.store.cluster import _redirect
from gatekeeper.types import LISTS

scopes = st.one_of(st.just("global"), st.builds(
    lambda kind, ident: f"{kind}:{ident}", st.sampled_from(["tenant", "agent", "user"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)))


def slot(key: str) -> int:
    """A key's hash slot."""
    return int(key_slot(key.encode()))


@given(scope=scopes, prefix=st.sampled_from(["gk:", "other/", "x"]))
def test_every_key_a_script_of_one_scope_touches_shares_one_slot(
        scope: str, prefix: str) -> None:
    """Lists, metadata, expiry, load marks, journals, packed records and buckets, staging
    copies, the trash, bulk-load metadata and freshness records of one scope: one slot."""
    keys = Keys(prefix, cluster=True)
    names: list[str] = []
    for name in LISTS:
        for of in (keys.of(name, scope), keys.staging(name, scope)):
            names += [of.list, of.meta, of.expiry, of.loading, of.journal, of.packed,
                      of.base + "1415", of.base + "index", of.trash]
        names += [keys.source(name, scope), keys.batch_prefix(scope) + "abc"]
    assert len({slot(n) for n in names}) == 1, names


@given(scope=scopes)
def test_tagged_keys_read_back_to_their_list_and_scope(scope: str) -> None:
    """A tagged key names its list and scope again (sweeps and inventories scan them)."""
    keys = Keys("gk:", cluster=True)
    for name in LISTS:
        assert keys.list_of(keys.source(name, scope), "source") == (name, scope)
        assert keys.from_expiry(keys.of(name, scope).expiry) == keys.of(name, scope)


def test_single_server_layout_is_unchanged() -> None:
    """Without the cluster, names are as they always were: nothing to migrate."""
    keys = Keys("gk:")
    assert keys.of("block", "tenant:acme").list == "gk:list:block:tenant:acme"
    assert keys.packed_trash("tenant:acme") == "gk:pktrash"
    assert keys.batch_prefix("tenant:acme") == "gk:batch:"
    assert Keys("gk:", cluster=True).of("block", "tenant:acme").list == \
        "gk:list:block:{tenant:acme}"


@pytest.mark.parametrize(("cluster", "counter", "guard"), [
    (False, "gk:vel:tenant:acme:sms:number-3600:15551234567",
     "gk:velhold:tenant:acme:sms:number-3600:15551234567"),
    (True, "gk:vel:{tenant:acme}:sms:number-3600:15551234567",
     "gk:velhold:{tenant:acme}:sms:number-3600:15551234567"),
])
def test_velocity_keys_are_the_same_built_afresh_or_from_their_kept_heads(
        cluster: bool, counter: str, guard: str) -> None:
    """A limit's counter and guard names (heads kept per scope, channel and limit): the
    second number of a limit gets the same layout as the first, and another subject
    never gets the first one's names."""
    keys = Keys("gk:", cluster=cluster)
    for _ in range(2):
        assert keys.velocity("tenant:acme", "sms", "number-3600", "15551234567") == \
            (counter, guard)
    assert keys.velocity("tenant:acme", "sms", "number-3600", "15550000000")[0] == \
        counter.replace("15551234567", "15550000000")
    assert keys.velocity("tenant:acme", "voice", "number-3600", "15551234567")[0] == \
        counter.replace(":sms:", ":voice:")


def test_redirect_replies_are_read_exactly() -> None:
    """MOVED and ASK give (kind, slot, address); anything else is not a redirect."""
    assert _redirect("MOVED 3999 127.0.0.1:6381") == ("MOVED", 3999, ("127.0.0.1", 6381))
    assert _redirect("ASK 1 [::1]:7000") == ("ASK", 1, ("::1", 7000))
    assert _redirect("ERR unknown") is None
    assert _redirect("MOVED x 127.0.0.1:1") is None
