"""Bounded work (recipients and scopes per request, sliced lookups that never fail
open) and credentials read as leniently as the gateway reads them: a mount that maps
credentials to scopes refuses a request whose credential it cannot read."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gatekeeper.providers.credentials import digest_of
from gatekeeper.resources import RESOURCES
from gatekeeper.screening import LOOKUP_SLICE
from gatekeeper.store import StoreUnavailable
from tests.conftest import FakeUpstream, StartGatekeeper, decisions
from tests.enforcement_helpers import ALLOWED, BLOCKED, FORM, MESSAGES, SID, config

TOKEN = "KEY0123456789abcdef"


def numbers(count: int) -> list[str]:
    """Distinct possible US numbers."""
    return [f"+1415{5550000 + i:07d}" for i in range(count)]


async def test_too_many_recipients_is_413(start_gatekeeper: StartGatekeeper,
                                          upstream: FakeUpstream, tmp_path: Path) -> None:
    """More recipients than proxy.max_recipients: 413 too_many_recipients, nothing sent."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path, proxy={"max_recipients": 5}))
    body = {"messages": [{"to": n} for n in numbers(6)]}
    resp = await gk.proxy.post("/generic/v1/sms", json=body)
    assert resp.status == 413
    assert (await resp.json())["code"] == "too_many_recipients"
    ok = await gk.proxy.post("/generic/v1/sms", json={"messages": [{"to": ALLOWED}] * 5})
    assert ok.headers["X-Gatekeeper-Decision"] == "forwarded"
    assert len(upstream.received) == 1


async def test_too_many_scopes_is_400(start_gatekeeper: StartGatekeeper,
                                      upstream: FakeUpstream, tmp_path: Path) -> None:
    """More applicable scopes than proxy.max_scopes: 400 too_many_scopes."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path, proxy={"max_scopes": 3}))
    resp = await gk.proxy.post(MESSAGES, data={"To": ALLOWED},
                               headers={"X-Gatekeeper-Scope": "tenant:a,tenant:b,tenant:c"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "too_many_scopes"
    assert upstream.received == []


async def test_a_large_batch_is_decided_in_slices_and_its_blocked_number_removed(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A batch several lookup slices long still finds the one blocked number at its end."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path))
    await gk.block(BLOCKED)
    batch = [*numbers(3 * LOOKUP_SLICE), BLOCKED]
    resp = await gk.proxy.post("/generic/v1/sms", json={"messages": [{"to": n} for n in batch]})
    assert resp.headers["X-Gatekeeper-Decision"] == "partial"
    assert BLOCKED not in upstream.received[0].body.decode()


@pytest.mark.parametrize(("count", "status"), [(1, 201), (LOOKUP_SLICE + 1, 503)],
                         ids=["one-slice-fails-open", "sliced-never-fails-open"])
async def test_store_on_error_open_applies_to_store_faults_only(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, count: int, status: int) -> None:
    """With on_error: open a small send is forwarded on a store fault; a request large
    enough to be looked up in slices is refused (503), never forwarded unchecked."""
    gk = await start_gatekeeper(config(upstream.url, tmp_path, store={"on_error": "open"}))

    async def down(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable("timed out")

    monkeypatch.setattr(gk.app[RESOURCES].store, "lookup", down)
    body = {"messages": [{"to": n} for n in numbers(count)]}
    resp = await gk.proxy.post("/generic/v1/sms", json=body)
    assert resp.status == status
    assert len(upstream.received) == (1 if status == 201 else 0)


def _basic(user: str, padded: bool = True) -> str:
    token = base64.b64encode(f"{user}:secret".encode()).decode()
    return "Basic " + (token if padded else token.rstrip("="))


@pytest.mark.parametrize("authorization", [
    _basic(SID), _basic(SID, padded=False), "basic  " + _basic(SID).split()[1],
    _basic(SID.lower()), "Basic " + base64.urlsafe_b64encode(f"{SID}:s?>".encode()).decode(),
], ids=["padded", "unpadded", "scheme-case-and-spaces", "sid-case", "urlsafe-alphabet"])
async def test_basic_credentials_are_read_leniently(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        authorization: str) -> None:
    """However the Basic credential is spelled, the tenant's list applies (the path here
    names another account, so only the header maps to the tenant)."""
    cfg = config(upstream.url, tmp_path, twilio={"credentials": {SID: ["tenant:acme"]}})
    gk = await start_gatekeeper(cfg)
    await gk.block(BLOCKED, scope="tenant:acme")
    path = MESSAGES.replace(SID, "AC" + "2" * 32)
    resp = await gk.proxy.post(path, data={"To": BLOCKED},
                               headers={"Authorization": authorization})
    assert resp.status == 403, await resp.text()
    assert upstream.received == []


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Token abc"}, 401),
    ({"Authorization": f"Bearer {TOKEN}"}, 201),
    ({"Authorization": f"bearer   {TOKEN} "}, 201),
], ids=["none", "empty-bearer", "other-scheme", "mapped", "mapped-lenient"])
async def test_an_unreadable_credential_is_refused_in_the_gateway_shape(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        headers: dict[str, str], status: int) -> None:
    """On a mount with credentials, no readable credential means no tenant: 401."""
    cfg = config(upstream.url, tmp_path,
                 telnyx={"credentials": {digest_of(TOKEN): ["tenant:acme"]}})
    gk = await start_gatekeeper(cfg)
    resp = await gk.proxy.post("/telnyx/v2/messages", json={"to": ALLOWED}, headers=headers)
    assert resp.status == status
    if status == 401:
        assert (await resp.json())["errors"][0]["code"] == "10009"
        assert decisions(gk.registry, "telnyx", "any", "rejected",
                         "unreadable_credential") == 1
        assert upstream.received == []


@pytest.mark.parametrize(("require", "status"), [(False, 201), (True, 401)])
async def test_require_credential_refuses_unmapped_credentials(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        require: bool, status: int) -> None:
    """A readable credential that maps to nothing passes, unless require_credential."""
    cfg = config(upstream.url, tmp_path, telnyx={
        "credentials": {digest_of(TOKEN): ["tenant:acme"]}, "require_credential": require})
    gk = await start_gatekeeper(cfg)
    resp = await gk.proxy.post("/telnyx/v2/messages", json={"to": ALLOWED},
                               headers={"Authorization": "Bearer someone-else"})
    assert resp.status == status
    if status == 401:
        assert json.loads(await resp.read())["errors"][0]["title"] == "Authentication failed"


async def test_form_send_with_unmapped_twilio_account_passes_without_requirement(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Twilio's account SID in the path is always a readable credential."""
    cfg = config(upstream.url, tmp_path, twilio={"credentials": {"ACother": ["tenant:x"]}})
    gk = await start_gatekeeper(cfg)
    resp = await gk.proxy.post(MESSAGES, data={"To": ALLOWED},
                               headers={"Content-Type": FORM})
    assert resp.status == 201
