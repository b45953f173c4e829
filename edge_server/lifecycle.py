"""What both engines do around serving: announce the port to a launcher, wait for SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path


def write_port_file(path: str | Path, port: int) -> None:
    """Write ``port`` to ``path`` atomically (a launcher polling for the file never reads half of it)."""
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(str(port))
    tmp.replace(path)


def termination_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT (install after libraries that set their own handlers, e.g. Ray)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop
