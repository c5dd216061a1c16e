"""Gateway presets, registered in one table, and the config checks that need them."""

from __future__ import annotations

from gatekeeper.config import Config, ConfigError
from gatekeeper.providers import (
    generic,
    iletimerkezi,
    infobip,
    messagebird,
    plivo,
    prelude,
    sinch,
    telnyx,
    twilio,
    vonage,
)
from gatekeeper.providers.preset import Preset

PRESETS: dict[str, Preset] = {
    module.PRESET.name: module.PRESET
    for module in (twilio, generic, vonage, plivo, telnyx, sinch, infobip, messagebird,
                   iletimerkezi, prelude)
}


def check_presets(config: Config) -> Config:
    """Refuse upstreams naming an unknown preset, routes on a preset that has its own,
    a generic upstream without routes, or `mirror` on a preset without a list API."""
    for i, upstream in enumerate(config.upstreams):
        key = f"upstreams[{i}]"
        preset = PRESETS.get(upstream.preset)
        if preset is None:
            raise ConfigError(f"{key}.preset", upstream.preset,
                              f"expected one of {', '.join(PRESETS)}")
        if upstream.preset == "generic" and not upstream.routes:
            raise ConfigError(f"{key}.routes", [], "a generic upstream needs routes")
        if upstream.preset != "generic" and upstream.routes:
            raise ConfigError(f"{key}.routes", "...",
                              f"preset '{upstream.preset}' defines its own routes")
        for j, wanted in enumerate(upstream.route_intents):
            if not any(wanted.method in r.methods and wanted.path in
                       (t.template for t in r.paths) for r in preset.routes(upstream)):
                raise ConfigError(f"{key}.route_intents[{j}].path", wanted.path,
                                  f"no {wanted.method} route of preset '{upstream.preset}' "
                                  "has this path template (see Presets in the README)")
        if upstream.mirror and preset.list_api is None:
            listing = ", ".join(n for n, p in PRESETS.items() if p.list_api is not None)
            raise ConfigError(f"{key}.mirror", True, f"preset '{upstream.preset}' has no list "
                              f"API to mirror (only {listing})")
    return config


__all__ = ["PRESETS", "Preset", "check_presets"]
