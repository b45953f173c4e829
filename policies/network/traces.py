"""Loading measured throughput traces into one type: :class:`Trace` (throughput over time).

Formats (recognized from the content, not the file name):

* time/throughput text: ``seconds<whitespace>Mbit/s`` per line (Pensieve's cooked
  Norway HSDPA and FCC traces);
* Mahimahi packet-delivery traces: one integer millisecond per line, each a chance to
  deliver one 1500-byte packet, repeated lines for several in that millisecond;
* CSV with a header holding ``DL_bitrate`` (kbit/s) and ``Timestamp``
  (``2019.12.16_07.22.43``), as in the UCC 5G/LTE data set.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitnet.errors import DataError

MAHIMAHI_PACKET_BYTES = 1500


class TraceFormatError(DataError):
    """A file is not a throughput trace in any supported format."""


@dataclass(frozen=True)
class Trace:
    """Piecewise-constant throughput: ``mbps[i]`` holds from ``times_s[i]`` to ``times_s[i + 1]``.

    The last sample holds for ``times_s[-1] - times_s[-2]`` seconds; the trace loops
    after ``duration_s``. Mbit/s are 10^6 bit/s.
    """

    name: str
    times_s: np.ndarray
    mbps: np.ndarray
    source: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        if len(self.times_s) < 2 or len(self.times_s) != len(self.mbps):
            raise TraceFormatError(f"{self.name}: a trace needs at least two samples of time and throughput")
        if np.any(np.diff(self.times_s) <= 0):
            raise TraceFormatError(f"{self.name}: times must increase strictly")
        if np.any(~np.isfinite(self.mbps)) or np.any(self.mbps < 0):
            raise TraceFormatError(f"{self.name}: throughput must be finite and non-negative")

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0] + (self.times_s[-1] - self.times_s[-2]))

    @property
    def sample_durations_s(self) -> np.ndarray:
        """How long each sample holds (s)."""
        return np.diff(np.append(self.times_s, self.times_s[0] + self.duration_s))

    @property
    def mean_mbps(self) -> float:
        return float(np.sum(self.mbps * self.sample_durations_s) / self.duration_s)

    def scaled(self, factor: float) -> Trace:
        """The same trace with every throughput multiplied by ``factor``."""
        if factor <= 0:
            raise ValueError(f"scale factor must be positive, got {factor}")
        return Trace(self.name, self.times_s, self.mbps * factor, self.source, self.kind)


def median_mbps(traces: list[Trace]) -> float:
    """The throughput (Mbit/s) the traces together are below for half of their time."""
    if not traces:
        raise ValueError("no traces")
    mbps = np.concatenate([t.mbps for t in traces])
    held = np.concatenate([t.sample_durations_s for t in traces])
    order = np.argsort(mbps, kind="stable")
    cumulative = np.cumsum(held[order])
    return float(mbps[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _text_trace(path: Path, lines: list[str]) -> Trace:
    times, rates = [], []
    for no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise TraceFormatError(f"{path}:{no}: expected 'seconds Mbit/s', got {line.strip()!r}")
        try:
            times.append(float(parts[0]))
            rates.append(float(parts[1]))
        except ValueError:
            raise TraceFormatError(f"{path}:{no}: not numbers: {line.strip()!r}") from None
    t = np.asarray(times)
    keep = np.concatenate([[True], np.diff(t) > 0])  # irregular logs repeat a timestamp now and then
    return Trace(path.name, t[keep] - t[0], np.asarray(rates)[keep], str(path), "time_mbps")


def _mahimahi_trace(path: Path, lines: list[str], bin_ms: int = 1000) -> Trace:
    try:
        stamps = np.asarray([int(x) for x in (ln.strip() for ln in lines) if x], dtype=np.int64)
    except ValueError:
        raise TraceFormatError(f"{path}: Mahimahi traces hold one integer millisecond per line") from None
    if len(stamps) < 2 or np.any(np.diff(stamps) < 0) or stamps[0] < 0:
        raise TraceFormatError(f"{path}: Mahimahi timestamps must be non-negative and non-decreasing")
    period = max(int(stamps[-1]), 1)  # the trace repeats with this period (ms)
    bins = np.bincount((stamps % period) // bin_ms, minlength=(period - 1) // bin_ms + 1)
    mbps = bins * MAHIMAHI_PACKET_BYTES * 8 / (bin_ms * 1e3)
    return Trace(path.name, np.arange(len(bins)) * bin_ms / 1e3, mbps.astype(np.float64), str(path), "mahimahi")


def _csv_trace(path: Path, text: str) -> Trace:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "DL_bitrate" not in rows[0] or "Timestamp" not in rows[0]:
        raise TraceFormatError(f"{path}: CSV traces need 'Timestamp' and 'DL_bitrate' columns")
    times, rates = [], []
    for no, row in enumerate(rows, 2):
        try:
            stamp = dt.datetime.strptime(row["Timestamp"], "%Y.%m.%d_%H.%M.%S").timestamp()
            rate = float(row["DL_bitrate"]) / 1e3  # kbit/s -> Mbit/s
        except (ValueError, TypeError):
            raise TraceFormatError(f"{path}:{no}: bad Timestamp or DL_bitrate {row.get('Timestamp')!r}") from None
        times.append(stamp)
        rates.append(rate)
    t, r = np.asarray(times), np.asarray(rates)
    # Several rows can share one second: average them.
    uniq, inverse = np.unique(t, return_inverse=True)
    mean = np.bincount(inverse, weights=r) / np.bincount(inverse)
    return Trace(path.name, uniq - uniq[0], mean, str(path), "csv")


def sniff(path: str | Path) -> str:
    """The format of a file: ``"time_mbps"``, ``"mahimahi"`` or ``"csv"``; raises TraceFormatError."""
    path = Path(path)
    try:
        head = path.read_bytes()[:4096].decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"{path}: not a text trace ({exc})") from None
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    if "," in first and "DL_bitrate" in first:
        return "csv"
    parts = first.split()
    if len(parts) == 1 and parts[0].isdigit():
        return "mahimahi"
    if len(parts) == 2:
        try:
            float(parts[0]), float(parts[1])
            return "time_mbps"
        except ValueError:
            pass
    raise TraceFormatError(f"{path}: not a throughput trace (first line {first[:60]!r})")


def load_trace(path: str | Path) -> Trace:
    """Load one trace file of any supported format."""
    path = Path(path)
    kind = sniff(path)
    text = path.read_text()
    if kind == "csv":
        return _csv_trace(path, text)
    lines = text.splitlines()
    return _mahimahi_trace(path, lines) if kind == "mahimahi" else _text_trace(path, lines)


def find_traces(root: str | Path) -> tuple[list[Trace], list[tuple[str, str]]]:
    """Every trace under a file or directory (recursively), and ``(path, reason)`` for files skipped."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    traces, skipped = [], []
    for f in files:
        try:
            traces.append(load_trace(f))
        except TraceFormatError as exc:
            skipped.append((str(f), str(exc)))
    return traces, skipped
