"""The live camera: the device gets the newest frame, overtaken frames are dropped (and say so), as
``splitnet simulate`` models a camera; a client run on it keeps every frame accounted for."""

from __future__ import annotations

import numpy as np
import pytest

from device_client import SplitClient
from device_client.camera import LiveCamera, paced
from device_client.report import client_report
from splitnet.checkpoint import SplitCheckpoint


class FakeClock:
    """Seconds that pass only when someone sleeps or the test says so."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def _camera(n: int, fps: float = 10.0) -> tuple[LiveCamera, FakeClock]:
    clock = FakeClock()
    frames = [np.full((2, 2, 3), i, dtype=np.uint8) for i in range(n)]
    return LiveCamera(frames, fps, clock=clock, sleep=clock.sleep), clock


def test_the_newest_frame_is_taken_and_the_overtaken_ones_dropped() -> None:
    cam, clock = _camera(10)
    (f0,) = cam.take()
    assert int(f0.image[0, 0, 0]) == 0 and f0.arrived == 100.0 and f0.dropped_before == 0
    clock.t += 0.25  # the device was busy 250 ms: frames 1 and 2 arrived meanwhile, 2 is the newest
    (f2,) = cam.take()
    assert int(f2.image[0, 0, 0]) == 2 and f2.arrived == pytest.approx(100.2) and f2.dropped_before == 1
    (f3,) = cam.take()  # free before the next tick: wait for it (no drop)
    assert int(f3.image[0, 0, 0]) == 3 and clock.t == pytest.approx(100.3) and f3.dropped_before == 0
    assert cam.take(1, timeout_s=0.01) == [] and clock.t == pytest.approx(100.31)  # no frame within 10 ms
    clock.t += 5.0  # long past the last frame: the last one is the newest, the rest were overtaken
    (f9,) = cam.take(4)  # one frame per take whatever the group size: a live camera has no backlog
    assert int(f9.image[0, 0, 0]) == 9 and f9.dropped_before == 5
    assert cam.take() is None
    assert cam.taken == [0, 2, 3, 9] and cam.dropped == [1, 4, 5, 6, 7, 8]


def test_a_camera_that_keeps_up_drops_nothing_and_iterates() -> None:
    cam, clock = _camera(5, fps=20.0)
    got = [(int(f.image[0, 0, 0]), f.arrived) for f in cam]
    assert got == [(i, pytest.approx(100.0 + i / 20.0)) for i in range(5)] and cam.dropped == []
    with pytest.raises(ValueError, match="fps"):
        LiveCamera([], 0.0)


def test_paced_hands_over_every_frame_at_its_tick() -> None:
    frames = [np.zeros((2, 2, 3), dtype=np.uint8)] * 3
    out = list(paced(frames, 200.0))
    assert len(out) == 3 and [round(b.arrived - out[0].arrived, 3) for b in out] == [0.0, 0.005, 0.01]


def test_a_slow_device_on_a_live_camera_drops_frames_and_the_report_counts_them(
        tiny_checkpoint: SplitCheckpoint) -> None:
    """The shipped profile's device runs the model in well over 100 ms; on a 20 FPS camera each local run
    overtakes at least one frame. Every frame is either answered or dropped (none lost), a dropped frame
    counts as a deadline miss, the policy is shown the frames dropped before each one, and top-1 is scored
    against the labels of the frames actually taken."""
    from policies.common.policy import Observation
    from policies.simulation.profile import Profile

    seen: list[int] = []

    class Local:
        name = "local"

        def act(self, obs: Observation) -> str:
            seen.append(obs.queue_frames)
            return "local"

    profile = Profile.load()
    assert profile.device_ms(0) > 100.0
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    cam = LiveCamera(frames, 20.0)
    with SplitClient(None, checkpoint=tiny_checkpoint, policy=Local(), emulate=profile, link_probe_s=0,
                     deadline_ms=100) as client:
        results = list(client.stream(cam))
    assert len(results) == len(cam.taken) and sorted(cam.taken + cam.dropped) == list(range(8))
    assert len(cam.dropped) >= len(results) - 1 >= 1  # each local run (> 100 ms) overtakes >= 1 frame
    # the policy is shown the frames dropped just before each frame (the input's last frame may have none)
    assert seen[0] == 0 and all(n >= 1 for n in seen[1:-1])
    assert seen == [0] + [b - a - 1 for a, b in zip(cam.taken, cam.taken[1:])]
    labels = [-1] * 8
    for i, r in zip(cam.taken, results):
        labels[i] = r.top1
    report = client_report(results, labels, 8, taken=cam.taken, dropped=len(cam.dropped))
    assert report["frames_lost"] == 0 and report["frames_dropped"] == len(cam.dropped)
    assert report["top1"] == 1.0  # each result scored against its own frame's label
    assert report["deadline_missed"] == 8 and report["deadline_miss_rate"] == 1.0  # 158 ms > 100 ms, drops too
