from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from policies.agents.rl import LearnedPolicy, train_policy
from policies.network.traces import Trace
from policies.simulation.simulate import run_policy
from splitnet.errors import CheckpointError
from tests.test_policies import toy_profile

pytestmark = pytest.mark.slow


def test_ppo_learns_the_obvious_action_and_reloads_without_pickle(tmp_path: Path) -> None:
    profile = toy_profile()
    fast = [Trace("fast", np.arange(0, 60.0), np.full(60, 50.0))]  # on a fast link the image wins
    out = train_policy(profile, fast, "ppo", 12_000, tmp_path / "ppo.zip", seed=0, progress=False)
    with zipfile.ZipFile(out) as zf:
        assert {"splitnet.json", "policy.pth"} <= set(zf.namelist())
    policy = LearnedPolicy(out)
    policy.check_actions(profile.names)
    run = run_policy(policy, profile, fast[0], frames=300)
    assert Counter(run.actions).most_common(1)[0][0] == "webp/q90"


def test_dqn_trains_and_loads(tmp_path: Path) -> None:
    profile = toy_profile()
    out = train_policy(profile, [Trace("t", np.arange(0, 30.0), np.full(30, 1.0))], "dqn", 3000,
                       tmp_path / "dqn.zip", progress=False)
    policy = LearnedPolicy(out)
    assert policy.name == "dqn"
    run = run_policy(policy, profile, Trace("t", np.arange(0, 30.0), np.full(30, 1.0)), frames=50)
    assert set(run.actions) <= set(profile.names)


def test_keep_best_saves_the_best_scoring_network_on_the_training_traces(tmp_path: Path) -> None:
    """With ``keep_best_every`` the saved network is the one that scored best along the run (the imitation
    start included) on the training traces' first frames, and scoring the saved file again gives that score."""
    from policies.simulation.simulate import simulate

    profile = toy_profile()
    traces = [Trace("t", np.arange(0, 60.0), np.where(np.arange(60) % 20 < 10, 0.05, 5.0))]
    out = train_policy(profile, traces, "ppo", 4096, tmp_path / "ppo.zip", seed=0, progress=False,
                       imitation_frames=500, keep_best_every=1024, keep_best_frames=200)
    policy = LearnedPolicy(out)
    kept = policy.meta["kept"]
    steps = [step for step, _ in kept["history"]]
    assert steps[0] == 0 and steps[-1] >= 4096 and len(steps) >= 5  # the start, every 1,024 steps, the end
    assert kept["reward_mean"] == max(r for _, r in kept["history"])
    assert kept["step"] in steps
    report, _ = simulate(profile, traces, {"saved": policy}, frames=200)
    assert report["policies"]["saved"]["reward_mean"] == pytest.approx(kept["reward_mean"], abs=1e-9)


def test_bad_policy_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        LearnedPolicy(tmp_path / "none.zip")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(CheckpointError, match="not a splitnet policy"):
        LearnedPolicy(tmp_path / "junk.zip")


def test_a_learned_policy_drives_the_live_client(tiny_checkpoint, tmp_path: Path) -> None:
    """Profile the (tiny) checkpoint, train a policy on it, let it choose actions for a real client."""
    from device_client import SplitClient
    from policies.simulation.profile import Profile, Scenario
    from splitnet.data import ImageSet
    from splitnet.profiling import default_actions, profile_actions
    from tests.servers import start_server

    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 40))
    measured = profile_actions(tiny_checkpoint, data, default_actions(tiny_checkpoint, (50,)), timing_frames=3,
                               progress=False)
    profile = Profile.from_dict({**measured, "scenario": {}}).with_scenario(Scenario(device_speed=4.0))
    traces = [Trace("t", np.arange(0, 60.0), np.where(np.arange(60) % 20 < 10, 0.05, 5.0))]
    policy = LearnedPolicy(train_policy(profile, traces, "ppo", 2048, tmp_path / "p.zip", progress=False))
    seen = []

    class Recording:  # the learned policy, keeping the observations the client fed it
        name = policy.name

        def act(self, observation):
            seen.append(observation)
            return policy.act(observation)

    server = start_server(tmp_path, tiny_checkpoint.path)
    try:
        with SplitClient(server.address, checkpoint=tiny_checkpoint, policy=Recording()) as client:
            results = list(client.stream(data.images[:30]))
    finally:
        server.kill()
    assert len(results) == 30
    assert {r.chosen for r in results} <= set(profile.names)
    assert all(r.offloaded == (r.chosen != "local") for r in results)
    # the client feeds the features the policy was trained on: the newest result's latency and fallback
    assert seen[0].last_latency_ms == 0 and all(o.last_latency_ms > 0 for o in seen[10:])
    assert all(o.inflight_bytes >= 0 for o in seen)
