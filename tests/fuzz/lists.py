"""The fuzzing Gatekeeper's numbers and config: the blocked, allowed and unlisted numbers,
how the block and allow lists are loaded, and the mounts (every preset once, plus the
`monitor` upstream) with the config that serves them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers

from gatekeeper.bulk import Importer, ImportOptions
from gatekeeper.resources import RESOURCES
from gatekeeper.store import ListItem
from tests.conftest import AUTH, Running, make_config


@dataclass(frozen=True, slots=True)
class Num:
    """A destination number and what the lists say of it.

    `role`: `blocked` (every channel, global), `prefix` (under the blocked `+3361*`),
    `voice` / `sms` (blocked on that channel only), `tenant` (blocked in `tenant:acme`
    only), `allowed` (allow-listed), `unlisted`.
    """

    e164: str
    region: str | None
    role: str

    @property
    def digits(self) -> str:
        return self.e164[1:]

    @property
    def cc(self) -> str:
        return str(phonenumbers.parse(self.e164).country_code)

    @property
    def nsn(self) -> str:
        return self.digits[len(self.cc):]

    def national(self) -> str:
        """The national format of the number's own region (`07700 900461`)."""
        return phonenumbers.format_number(phonenumbers.parse(self.e164),
                                          phonenumbers.PhoneNumberFormat.NATIONAL)


# Blocked numbers: digit strings chosen so that nothing else generated can hold them.
US_BLOCKED = Num("+12025550143", "US", "blocked")
GB_BLOCKED = Num("+447700900461", "GB", "blocked")   # also allow-listed: block wins the tie
TR_BLOCKED = Num("+905327654321", "TR", "blocked")
DE_BLOCKED = Num("+4917612398745", "DE", "blocked")
PRELUDE_SEED = Num("+30123456789", None, "blocked")  # the seed documents' examples: not
AGENT_SEED = Num("+1234567890", None, "blocked")     # possible numbers, still enforced
PREFIX_ENTRY = "+3361*"
VOICE_ONLY = Num("+48601234567", "PL", "voice")
SMS_ONLY = Num("+34655443322", "ES", "sms")
TENANT_ONLY = Num("+61412345679", "AU", "tenant")
TENANT = "tenant:acme"
ALLOWED = Num("+14155550100", "US", "allowed")
UNLISTED = (Num("+447700900462", "GB", "unlisted"), Num("+905321112233", "TR", "unlisted"),
            Num("+4915112345678", "DE", "unlisted"), Num("+819012345678", "JP", "unlisted"),
            Num("+5511987654321", "BR", "unlisted"), Num("+12125550187", "US", "unlisted"))
EXACT_BLOCKED = (US_BLOCKED, GB_BLOCKED, TR_BLOCKED, DE_BLOCKED, PRELUDE_SEED, AGENT_SEED)
# Callers (`From`, `src`, ...): never blocked, never destinations.
CALLER = "+12125550187"
CALLER_DIGITS = "12125550187"


async def load_lists(running: Running) -> None:
    """The block and allow lists every fuzzing Gatekeeper starts with. Half of the exact
    numbers come by a replace import, so that they sit in a packed load (store/packing.py)
    and the invariant is checked over both layouts; the others by the admin API."""
    packed = [n.e164 for n in EXACT_BLOCKED[::2]]

    async def body() -> AsyncIterator[bytes]:
        yield "".join(f"{n}\n" for n in packed).encode()

    store = running.app[RESOURCES].store
    await Importer(store, ImportOptions("block", "global", "replace")).run(body())
    assert (await store.packed_members(store.keys.of("block", "global"),
                                       [ListItem(n) for n in packed]))[1] == [True] * len(packed)
    await running.block(*(n.e164 for n in EXACT_BLOCKED[1::2]), PREFIX_ENTRY)
    resp = await running.admin.post("/admin/v1/lists/block/entries", headers=AUTH, json={
        "entries": [{"entry": VOICE_ONLY.e164, "channel": "voice"},
                    {"entry": SMS_ONLY.e164, "channel": "sms"}], "scope": "global"})
    assert resp.status == 200, await resp.text()
    added = await resp.json()
    assert not added["failed"], added
    await running.block(TENANT_ONLY.e164, scope=TENANT)
    await running.allow(ALLOWED.e164, GB_BLOCKED.e164)


# ---------------------------------------------------------------------------- mounts


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One upstream of the fuzzing config, as the builders and the checker see it."""

    name: str        # the mount is /<name>; the upstream URL's path is /up/<name>
    preset: str
    msisdn: bool
    region: str | None
    on_block: str


PRESET_FACTS: dict[str, tuple[bool, str | None]] = {
    # preset: (msisdn, region set on its upstream in the fuzzing config)
    "twilio": (False, "US"), "vonage": (True, "GB"), "plivo": (True, None),
    "telnyx": (False, "US"), "sinch": (True, "DE"), "infobip": (True, None),
    "messagebird": (True, "GB"), "iletimerkezi": (False, "TR"), "prelude": (False, None),
    "generic": (False, "GB"),
}
PRESETS = tuple(PRESET_FACTS)
MONITOR = "watch"
GENERIC_ROUTES = [
    {"method": "POST", "path": "/v1/sms", "channel": "sms",
     "destination": {"json": "messages[].to"}},
    {"method": "POST", "path": "/v1/{account}/call", "channel": "voice",
     "destination": {"form": "to"}},
]


def mounts(flip: bool, monitor_preset: str) -> dict[str, MountInfo]:
    """Every preset once, `reject` and `skip` alternating (`flip` swaps them), plus the
    monitor upstream `watch` with `monitor_preset`."""
    out: dict[str, MountInfo] = {}
    for i, preset in enumerate(PRESETS):
        msisdn, region = PRESET_FACTS[preset]
        on_block = ("reject", "skip")[(i + flip) % 2]
        out[preset] = MountInfo(preset, preset, msisdn, region, on_block)
    msisdn, region = PRESET_FACTS[monitor_preset]
    out[MONITOR] = MountInfo(MONITOR, monitor_preset, msisdn, region, "monitor")
    return out


def fuzz_config(upstream_url: str, tmp_path: Path, infos: dict[str, MountInfo],
                on_invalid: str) -> Any:
    """The Gatekeeper config: each mount's upstream at `<fake>/up/<name>`."""
    upstreams = []
    for info in infos.values():
        raw: dict[str, Any] = {"name": info.name, "url": f"{upstream_url}/up/{info.name}",
                               "preset": info.preset, "on_block": info.on_block}
        if info.region and info.preset != "iletimerkezi":
            raw["region"] = info.region
        if info.preset == "generic":
            raw["routes"] = GENERIC_ROUTES
        upstreams.append(raw)
    return make_config(upstream_url, tmp_path, upstreams=upstreams,
                       proxy={"on_invalid": on_invalid})
