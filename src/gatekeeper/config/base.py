"""What every part of the configuration reader shares: the error naming a key, and the
mapping reader that remembers its key path and refuses unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast


class ConfigError(Exception):
    """A configuration value is missing or invalid; names the key and the value."""

    def __init__(self, key: str, value: object, problem: str) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        super().__init__(f"config key '{key}': {problem} (got {value!r})")


T = TypeVar("T")


class Section:
    """A mapping being read: remembers its key path and refuses unknown keys."""

    def __init__(self, key: str, raw: object) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(key or "<root>", raw, "expected a mapping")
        self.key = key
        self.raw: Mapping[str, Any] = raw
        self.seen: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, kind: type[T], default: T) -> T:
        self.seen.add(name)
        value = self.raw.get(name, default)
        # bool is an int subclass: refuse `port: true` and `mask_numbers: 1` alike.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(self.path(name), value, f"expected {kind.__name__}")
        return value

    def optional_str(self, name: str) -> str | None:
        self.seen.add(name)
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(self.path(name), value, "expected a non-empty string")
        return value

    def choice(self, name: str, choices: tuple[T, ...], default: T) -> T:
        value = self.get(name, str, cast(str, default))
        if value not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise ConfigError(self.path(name), value, f"expected one of {allowed}")
        return cast(T, value)

    def section(self, name: str) -> Section:
        self.seen.add(name)
        return Section(self.path(name), self.raw.get(name))

    def finish(self) -> None:
        # YAML keys need not be strings (`on:` is True): sort them as text.
        unknown = sorted(set(self.raw) - self.seen, key=str)
        if unknown:
            raise ConfigError(self.path(unknown[0]), self.raw[unknown[0]], "unknown key")


def positive(key: str, value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise ConfigError(key, value, "must be greater than zero")
