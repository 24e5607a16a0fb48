"""Command-line config overrides: ``key=value`` (``-c``) and ``key=v1,v2,...`` (``--grid``).

Values are parsed as TOML, so numbers, booleans and arrays keep their types; bare words are
strings (``auction.mechanism=gsp``).

Example:
    >>> parse_override("auction.reserve=0.1")
    ('auction.reserve', 0.1)
    >>> parse_grid("auction.slot_ctrs=[1.0],[1.0, 0.5]")
    ('auction.slot_ctrs', [[1.0], [1.0, 0.5]])
    >>> parse_grid("auction.mechanism=gsp,vcg")
    ('auction.mechanism', ['gsp', 'vcg'])
"""

from __future__ import annotations

import tomllib
from typing import Any

from .config import ConfigError, clip


def _split(text: str, example: str) -> tuple[str, str]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ConfigError(f"{clip(repr(text))} must look like {example}")
    return key.strip(), raw.strip()


def _toml(raw: str) -> Any:
    """``raw`` read as a TOML value; TOMLDecodeError if it is none."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except RecursionError:
        raise ConfigError(f"{clip(repr(raw))}: arrays or tables nested too deeply") from None


def _value(raw: str) -> Any:
    try:
        return _toml(raw)
    except tomllib.TOMLDecodeError:
        return raw  # a bare word is a string


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, typed value)``."""
    key, raw = _split(text, "key=value (e.g. auction.reserve=0.1)")
    return key, _value(raw)


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``"key=v1,v2,..."`` -> ``(key, [typed values])``; arrays may be values: ``[1],[1, 0.5]``."""
    key, raw = _split(text, "key=v1,v2,... (e.g. auction.reserve=0,0.1,0.2)")
    try:
        values = _toml(f"[{raw}]")
    except tomllib.TOMLDecodeError:
        values = [_value(part.strip()) for part in raw.split(",")]
    if not values or any(v == "" for v in values):
        raise ConfigError(f"grid {clip(repr(text))}: every value must be non-empty")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"grid {clip(repr(text))}: a value is repeated")
    return key, values
