"""Per-action circuit breaker: stop offloading an action that keeps missing, probe to come back.

An action's breaker is *closed* (frames may offload) until ``trip_after`` offloads in a
row miss (answered after their frame's deadline or budget, or not answered at all). It
then *opens* for ``cooldown_s``: frames of that action run locally. After the cooldown
the client sends one *probe*: a frame that runs locally for its result and is also
offloaded in the background; if that answer comes back within the frame's budget the
breaker closes, else it stays open for another cooldown. A probe costs the frame's head
and encode time and a few bytes, never its latency.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class _State:
    misses: int = 0  # consecutive misses
    open_until: float | None = None  # time.monotonic() when the cooldown ends; None: closed
    probe_until: float = 0.0  # an outstanding probe's answer is due by then


@dataclass(frozen=True)
class BreakerEvent:
    """One change of state (``t``: time.monotonic(); ``what``: "open", "close" or "probe")."""

    t: float
    action: str
    what: str


@dataclass
class CircuitBreaker:
    """The breakers of every offloading action (thread-safe)."""

    trip_after: int = 3  # consecutive misses that open an action's breaker
    cooldown_s: float = 1.0  # seconds an open breaker waits before its next probe
    events: list[BreakerEvent] = field(default_factory=list)
    _states: dict[str, _State] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def is_open(self, action: str) -> bool:
        """Frames of ``action`` must not offload now."""
        with self._lock:
            st = self._states.get(action)
            return st is not None and st.open_until is not None

    def take_probe(self, action: str, due_s: float) -> bool:
        """True (once per cooldown) when an open breaker wants a probe now; the answer is due in ``due_s``."""
        now = time.monotonic()
        with self._lock:
            st = self._states.get(action)
            if st is None or st.open_until is None or now < st.open_until or now < st.probe_until:
                return False
            st.probe_until = now + due_s
            st.open_until = now + max(self.cooldown_s, due_s)  # no new probe before this one is settled
            self.events.append(BreakerEvent(now, action, "probe"))
            return True

    def record(self, action: str, hit: bool) -> None:
        """An offload of ``action`` was answered within its budget (``hit``) or not."""
        now = time.monotonic()
        with self._lock:
            st = self._states.setdefault(action, _State())
            if hit:
                st.misses = 0
                if st.open_until is not None:
                    st.open_until, st.probe_until = None, 0.0
                    self.events.append(BreakerEvent(now, action, "close"))
                return
            st.misses += 1
            if st.open_until is not None:
                st.open_until = max(st.open_until, now + self.cooldown_s)
            elif st.misses >= self.trip_after:
                st.open_until = now + self.cooldown_s
                self.events.append(BreakerEvent(now, action, "open"))

    def open_actions(self) -> list[str]:
        with self._lock:
            return [a for a, st in self._states.items() if st.open_until is not None]
