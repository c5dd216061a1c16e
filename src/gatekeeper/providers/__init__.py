"""Gateway presets, registered in one table."""

from __future__ import annotations

from gatekeeper.providers import generic, twilio
from gatekeeper.providers.base import Preset

PRESETS: dict[str, Preset] = {
    twilio.PRESET.name: twilio.PRESET,
    generic.PRESET.name: generic.PRESET,
}

__all__ = ["PRESETS", "Preset"]
