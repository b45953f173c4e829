"""argparse ``type=`` callables that reject impossible values at parse time.

Each raises ``argparse.ArgumentTypeError`` with a message saying what is allowed, so
``splitnet serve --max-batch 0`` ends in one usage line and exit status 2, before any
model is loaded.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (a rate, a scale, a deadline in ms)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return float(value)


def nonnegative_float(text: str) -> float:
    """A number >= 0 (a delay or a wait in ms or s; 0 means none)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return float(value)


def positive_int(text: str) -> int:
    """An integer >= 1 (a count, a batch size)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return int(value)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return int(value)


def probability(text: str) -> float:
    """A probability in [0, 1]."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return float(value)


def fraction(text: str) -> float:
    """A width fraction in (0, 1]."""
    value = _number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return float(value)


def quality(text: str) -> int:
    """An image codec quality, 1..100."""
    value = _number(text, int)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be an integer in 1..100, got {text}")
    return int(value)


def host_port(text: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a port in 0..65535; returned unchanged."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port in 0..65535, got {text!r}")
    return text


def server_list(text: str) -> str:
    """One ``HOST:PORT`` or several separated by commas (a ``dns:///`` or other scheme target passes as is)."""
    if "://" in text or text.startswith(("ipv4:", "ipv6:", "unix:")):
        return text
    parts = [p for p in text.split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError("needs at least one HOST:PORT")
    for part in parts:
        host_port(part)
    return text


ASSETS = {
    "shipped:classifier": "SHIPPED_CHECKPOINT",
    "shipped:detector": "SHIPPED_DETECTOR",
    "shipped:demo": "DEMO_DATA",
    "shipped:detection-demo": "DETECTION_DEMO_DATA",
}


def asset_path(text: str) -> str:
    """A path, or the name of a packaged asset (``shipped:detector``, ``shipped:demo``, ...), which
    resolves inside the installed package wherever the command runs."""
    if text.startswith("shipped:"):
        if text not in ASSETS:
            raise argparse.ArgumentTypeError(f"unknown packaged asset {text!r}; known: {', '.join(ASSETS)}")
        import splitnet.checkpoint as assets

        return str(getattr(assets, ASSETS[text]))
    return text
