"""Literals shared by every layer: channels, list names, verdicts. No imports, no I/O."""

from __future__ import annotations

from typing import Literal

Channel = Literal["sms", "voice"]
CHANNELS: tuple[Channel, ...] = ("sms", "voice")
ListName = Literal["block", "allow"]
LISTS: tuple[ListName, ...] = ("block", "allow")
Verdict = Literal["blocked", "allowed", "unlisted"]
