"""Gatekeeper: allow and block lists in front of SMS and voice gateways."""

from __future__ import annotations

__version__ = "0.1.0"
