"""The figures the benchmarks derive from run records (no runs here: records written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.live_agreement import observation_summary, server_speed
from policies.network.channel_models import Channel, ChannelConfig
from policies.network.traces import Trace
from tests.test_policies import toy_profile


def _obs(frame: int, mbps: float) -> dict:
    return {"frame": frame, "throughput_mbps": mbps, "rtt_ms": 40.0, "last_latency_ms": 80.0, "last_fallback": False}


def test_observation_summary_compares_the_estimate_with_the_link_at_each_decision(tmp_path: Path) -> None:
    # 1 Mbit/s for 10 s, then 0.25 Mbit/s (x0.5 scale): an estimate of twice the rate, placed 10 frames a second
    # from trace time 5 s, reads 2.0 with correlation 1; the first decision had no estimate and is left out
    trace = Trace("step", np.arange(0.0, 30.0), np.where(np.arange(30) < 10, 2.0, 0.5))
    link = Channel(trace, ChannelConfig(scale=0.5))
    rows = [_obs(0, 0.0)] + [_obs(n, 2 * link.rate_mbps(5.0 + n / 10)) for n in range(1, 100)]
    log = tmp_path / "obs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = observation_summary(log, link, first_frame_s=5.0, fps=10.0)
    assert out["no_throughput_estimate"] == pytest.approx(0.01)
    assert out["estimate_over_link"] == pytest.approx(2.0)
    assert out["estimate_link_corr"] == pytest.approx(1.0)
    assert "estimate_over_link" not in observation_summary(log)


def test_server_speed_is_the_live_server_time_over_the_profiled_time_of_the_same_frames() -> None:
    profile = toy_profile()  # layer1/w0.5: 1.0 ms measured on the server, layer2/w0.5: 0.5 ms

    def frame(action: str, ran_on: str, queue: float, decode: float, tail: float) -> dict:
        return {"action": action, "ran_on": ran_on, "stages_ms": {"queue": queue, "decode": decode, "tail": tail}}

    reports = [{"frames_detail": [frame("layer1/w0.5", "server", 0.5, 0.5, 2.0), frame("local", "device", 0, 0, 0)]},
               {"frames_detail": [frame("layer2/w0.5", "server", 0.0, 0.5, 1.0)]}]
    assert server_speed(reports, profile) == pytest.approx((3.0 + 1.5) / (1.0 + 0.5))
    assert server_speed([{"frames_detail": [frame("local", "device", 0, 0, 0)]}], profile) is None
