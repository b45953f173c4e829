"""Frames as a camera hands them over: a live camera (the newest frame; older ones dropped) or a buffered one.

A camera runs at its own frame rate whether the device keeps up or not. :class:`LiveCamera`
replays recorded frames that way: when the client asks for a frame it gets the newest one
that has arrived (or waits for the next tick), and every frame overtaken meanwhile is
dropped, as in a robot's perception loop and as ``splitnet simulate`` models it (a dropped
frame counts as a deadline miss). :func:`paced` hands over every frame, each no earlier than
its tick (a buffered recording: a device that falls behind sees latency grow without bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimedFrame:
    """A frame and when it arrived (``time.perf_counter()``), e.g. from a camera.

    ``SplitClient.stream`` counts a frame's latency and its deadline from ``arrived``;
    a plain array counts from when the client takes it. ``dropped_before``: frames a live
    camera dropped just before this one because the device was busy (the policy sees it).
    """

    image: np.ndarray
    arrived: float
    dropped_before: int = 0


def paced(frames: Iterable[np.ndarray], fps: float | None) -> Iterator[TimedFrame]:
    """Every frame, each handed over no earlier than its tick at ``fps`` and stamped with it
    (``fps`` None: at once, stamped when taken)."""
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        if fps is None:
            yield TimedFrame(frame, time.perf_counter())
            continue
        tick = start + i / fps
        if (delay := tick - time.perf_counter()) > 0:
            time.sleep(delay)
        yield TimedFrame(frame, tick)


class LiveCamera:
    """A camera at ``fps`` (frames/s) replaying ``frames``; the client always gets the newest frame.

    Frame ``i`` arrives at ``start + i / fps``, the clock starting at the first :meth:`take`
    (``clock`` and ``sleep`` in seconds: ``time.perf_counter`` and ``time.sleep`` unless a test gives its own).
    :meth:`take` returns the newest frame that has arrived and was not handed over yet, as a
    :class:`TimedFrame` stamped with its tick and carrying how many frames were overtaken just
    before it (``dropped_before``); it waits for the next tick when there is none. ``taken``
    and ``dropped`` list the frames' indices. ``SplitClient.stream`` takes frames from a
    LiveCamera directly (no read-ahead, which would hand over stale frames); iterating over
    one takes a frame each step (for ``SplitClient.infer`` in a loop).
    """

    def __init__(self, frames: Iterable[np.ndarray], fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0 (got {fps})")
        self.fps = float(fps)
        self._frames = iter(frames)
        self._clock, self._sleep = clock, sleep
        self._start: float | None = None
        self._next = 0  # index of the next frame not handed over or dropped
        self._ended = False
        self.taken: list[int] = []
        self.dropped: list[int] = []

    @property
    def started_at(self) -> float | None:
        """When frame 0 arrived (``clock`` seconds; ``time.perf_counter``, CLOCK_MONOTONIC on Linux); None
        before the first take."""
        return self._start

    def _tick(self, i: int) -> float:
        assert self._start is not None
        return self._start + i / self.fps

    def _newest(self, now: float) -> int:
        assert self._start is not None
        return int(np.floor((now - self._start) * self.fps + 1e-9))

    def take(self, n: int = 1, timeout_s: float | None = None) -> list[TimedFrame] | None:
        """``[newest frame]``; ``[]`` when none arrives within ``timeout_s`` (None: wait); ``None`` at the end.

        One frame per call whatever ``n`` is: a live camera has no backlog to batch.
        """
        if self._ended:
            return None
        now = self._clock()
        if self._start is None:
            self._start = now
        newest = self._newest(now)
        if newest < self._next:  # nothing new yet: wait for the next tick
            delay = self._tick(self._next) - now
            if timeout_s is not None and delay > timeout_s:
                self._sleep(max(0.0, timeout_s))
                return []
            self._sleep(max(0.0, delay))
            newest = self._next
        skipped: list[int] = []
        frame = None
        while self._next <= newest:  # read up to the newest frame; the ones before it are overtaken
            try:
                image = next(self._frames)
            except StopIteration:
                self._ended = True
                break
            if frame is not None:
                skipped.append(frame[0])
            frame = (self._next, image)
            self._next += 1
        if frame is None:
            return None
        self.dropped.extend(skipped)
        self.taken.append(frame[0])
        return [TimedFrame(frame[1], self._tick(frame[0]), dropped_before=len(skipped))]

    def __iter__(self) -> Iterator[TimedFrame]:
        while (group := self.take(1, None)) is not None:
            yield from group

    def close(self) -> None:
        """Nothing to release (the interface of the client's frame sources)."""
