"""Frames from the caller's iterable, read on a thread, so the client can act while it waits for one.

A camera iterator blocks until its next frame; a client that read it on its own thread could
not finish an in-flight frame whose deadline passes meanwhile (its wait would grow by a frame
interval, or more). :class:`PrefetchedFrames` reads the iterable on a daemon thread into a queue
of at most ``ahead`` items, so the reading never runs far ahead of the client (a frame's
arrival stays the moment the client takes it, unless it is a ``TimedFrame`` with its own).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class PrefetchedFrames:
    """``take(n, timeout_s)``: the next group of up to ``n`` frames, ``[]`` on timeout, ``None`` at the end.

    A group is returned once it holds ``n`` frames, or fewer when the iterable ended; an
    exception raised by the iterable is raised by :meth:`take` in the caller's thread.
    """

    def __init__(self, frames: Iterable, ahead: int = 1) -> None:
        self._it = iter(frames)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._group: list = []
        self._ended = False
        self._thread = threading.Thread(target=self._read, name="splitnet-source", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for frame in self._it:
                if not self._put(frame):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._put(_Raised(exc))
            return
        self._put(_END)

    def take(self, n: int, timeout_s: float | None) -> list | None:
        """Up to ``n`` frames; ``[]`` when none completed the group within ``timeout_s`` (None: wait)."""
        while len(self._group) < n and not self._ended:
            try:
                item = self._queue.get(timeout=timeout_s)
            except queue.Empty:
                return []
            if isinstance(item, _Raised):
                raise item.exc
            if item is _END:
                self._ended = True
            else:
                self._group.append(item)
        if not self._group:
            return None
        group, self._group = self._group, []
        return group

    def close(self) -> None:
        """Stop reading (the thread ends after the item it is reading, if any)."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(0.2)
