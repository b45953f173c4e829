"""When a device gives up waiting for the server, and what an offload is expected to cost (ms): rules the
device client follows and the simulator and the heuristics model."""

from __future__ import annotations

FALLBACK_MARGIN = 1.2  # a local fallback is given this many times the device's local run time
RESERVE_SHARE = 0.05  # the least part of a budget kept back for a fallback, where that is more than the run


def fallback_run_ms(local_ms: float, slack_ms: float = 4.0) -> float:
    """The time (ms) a local fallback is given: ``FALLBACK_MARGIN`` x the local run plus ``slack_ms``."""
    return FALLBACK_MARGIN * local_ms + slack_ms


def fallback_reserve_ms(local_ms: float, budget_ms: float, slack_ms: float = 4.0) -> float:
    """Time (ms) a device keeps back from waiting for the server's answer, so that running the frame
    locally after giving up still ends within its budget: :func:`fallback_run_ms`, and at least
    ``RESERVE_SHARE`` of a long budget (it costs the wait little there, and a loaded device's local
    run can take twice its usual time: 35 ms against 16 measured here). When even the run does not
    fit in the budget a fallback is late anyway, so nothing is kept back and the answer gets the
    whole budget. The device client waits by this rule and the simulator models it."""
    needed = fallback_run_ms(local_ms, slack_ms)
    return max(needed, RESERVE_SHARE * budget_ms) if needed <= budget_ms else 0.0


ANSWER_PATIENCE_MS = 2000.0  # the device client's default budget (its RPC timeout)


def answer_wait_ms(local_ms: float, budget_ms: float, slack_ms: float = 4.0,
                   patience_ms: float = ANSWER_PATIENCE_MS, usual_local_ms: float | None = None) -> float:
    """How long (ms from a frame's arrival) a device waits for the server's answer before it runs the frame
    locally: the budget less a local run's time (:func:`fallback_reserve_ms`), so the fallback still makes it.
    When even a local run cannot make the budget, ``patience_ms`` (at least the budget): a fallback would be
    late anyway and would hold the device up for the frames after it, while the answer may still come. The
    device client waits by this rule and the simulator models it.

    ``usual_local_ms`` (default ``local_ms``): the device's usual local run time, where ``local_ms`` is the
    one to keep time back for (a loaded device's slow runs). The usual time decides between the two rules,
    so a device whose runs normally fit never waits past its budget because of a loaded moment (it waited
    2 s behind a slow link's backlog once); time is kept back for the slow runs where the budget allows,
    else for the usual one."""
    usual_ms = local_ms if usual_local_ms is None else usual_local_ms
    if fallback_run_ms(usual_ms, slack_ms) > budget_ms:
        return max(budget_ms, patience_ms)
    return budget_ms - fallback_reserve_ms(kept_back_run_ms(local_ms, budget_ms, slack_ms, usual_ms),
                                           budget_ms, slack_ms)


def kept_back_run_ms(local_ms: float, budget_ms: float, slack_ms: float = 4.0,
                     usual_local_ms: float | None = None) -> float:
    """The local run time (ms) a device keeps time back for: ``local_ms`` (a loaded moment's slow run) where
    its fallback fits the budget, else the usual run's ``usual_local_ms`` (see :func:`answer_wait_ms`)."""
    if usual_local_ms is None or fallback_run_ms(local_ms, slack_ms) <= budget_ms:
        return local_ms
    return usual_local_ms


def predicted_offload_ms(device_ms: float, payload_bytes: float, mbps: float, rtt_ms: float,
                         server_ms: float) -> float:
    """An offload's expected time (ms): device work, serialization at ``mbps`` (Mbit/s), RTT, server work."""
    return device_ms + payload_bytes * 8 / (mbps * 1e3) + rtt_ms + server_ms


def harmonic_mean(values: tuple[float, ...] | list[float]) -> float:
    """The harmonic mean of the positive ``values`` (throughputs, Mbit/s); 0 when there is none."""
    vals = [v for v in values if v > 0]
    return len(vals) / sum(1.0 / v for v in vals) if vals else 0.0
