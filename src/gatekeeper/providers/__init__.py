"""Gateway presets, registered in one table."""

from __future__ import annotations

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
from gatekeeper.providers.base import Preset

PRESETS: dict[str, Preset] = {
    module.PRESET.name: module.PRESET
    for module in (twilio, generic, vonage, plivo, telnyx, sinch, infobip, messagebird,
                   iletimerkezi, prelude)
}

__all__ = ["PRESETS", "Preset"]
