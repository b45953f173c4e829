from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policies.network.channel_models import Channel, ChannelConfig, GilbertElliott
from policies.network.trace_sets import split_files
from policies.network.traces import Trace, TraceFormatError, find_traces, load_trace, median_mbps, sniff
from tests.conftest import SHARED

TRACES = SHARED / "traces"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_time_mbps_format(tmp_path: Path) -> None:
    t = load_trace(_write(tmp_path, "a.log", "0.0\t2.0\n1.0\t4.0\n1.0\t5.0\n2.5\t1.0\n"))
    assert sniff(tmp_path / "a.log") == "time_mbps"
    assert list(t.times_s) == [0.0, 1.0, 2.5]  # a repeated timestamp is dropped
    assert t.duration_s == pytest.approx(4.0)
    assert t.mean_mbps == pytest.approx((2 * 1 + 4 * 1.5 + 1 * 1.5) / 4)


def test_the_median_throughput_weighs_each_sample_by_how_long_it_holds() -> None:
    long_slow = Trace("a", np.array([0.0, 3.0, 4.0]), np.array([1.0, 5.0, 9.0]))  # 1 Mbit/s for 3 s of 5
    assert median_mbps([long_slow]) == 1.0  # the median of the samples alone would be 5
    fast = Trace("b", np.array([0.0, 1.0]), np.array([7.0, 8.0]))  # 2 s more, all above 5 Mbit/s
    assert median_mbps([long_slow, fast]) == 5.0  # 7 s: 1 for 3 s, 5 for 1 s, the half (3.5 s) falls in the 5
    with pytest.raises(ValueError):
        median_mbps([])


def test_mahimahi_format(tmp_path: Path) -> None:
    lines = "\n".join(["5"] * 100 + ["1500"] * 50 + ["2000"]) + "\n"
    t = load_trace(_write(tmp_path, "x.up", lines))
    assert t.kind == "mahimahi"
    # 100 packets in the first second, plus the one at 2000 ms = 0 ms of the next period
    assert t.mbps[0] == pytest.approx(101 * 1500 * 8 / 1e6)
    assert t.mbps[1] == pytest.approx(50 * 1500 * 8 / 1e6)


def test_csv_format(tmp_path: Path) -> None:
    text = ("Timestamp,NetworkMode,DL_bitrate,UL_bitrate\n2019.12.16_07.22.43,5G,1000,1\n"
            "2019.12.16_07.22.43,5G,3000,1\n2019.12.16_07.22.44,LTE,500,1\n")
    t = load_trace(_write(tmp_path, "s.csv", text))
    assert t.kind == "csv" and list(t.mbps) == [2.0, 0.5]  # kbit/s -> Mbit/s, same second averaged


@pytest.mark.parametrize("text", ["hello world\n", "0.0 1.0 2.0\n", "1\n0\n", "0.0\tx\n1\t2\n", ""])
def test_malformed_files_raise(tmp_path: Path, text: str) -> None:
    with pytest.raises(TraceFormatError):
        load_trace(_write(tmp_path, "bad.txt", text))


def test_binary_file_is_not_a_trace(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TraceFormatError):
        load_trace(p)


def test_find_traces_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "good", "0 1\n1 2\n")
    _write(tmp_path, "README.md", "# notes\n")
    traces, skipped = find_traces(tmp_path)
    assert [t.name for t in traces] == ["good"] and len(skipped) == 1


@pytest.mark.skipif(not TRACES.exists(), reason="shared traces not present")
def test_every_shared_trace_loads_and_the_split_is_by_family() -> None:
    traces, skipped = find_traces(TRACES)
    assert len(traces) >= 17 and all(p.endswith(".md") for p, _ in skipped)
    train, evaluation = split_files("train"), split_files("eval")
    assert not set(train) & set(evaluation)
    families = lambda files: {f.parent.name for f in files}  # noqa: E731
    assert families(train) == families(evaluation) == {"norway_hsdpa", "fcc", "mahimahi", "ucc_5g"}
    assert set(train) | set(evaluation) == {Path(t.source).resolve() for t in traces}


def _steps() -> Trace:
    return Trace("steps", np.array([0.0, 1.0, 2.0]), np.array([8.0, 0.8, 8.0]))  # 1 MB/s, 0.1 MB/s, 1 MB/s


def test_transfer_integrates_the_varying_rate() -> None:
    ch = Channel(_steps(), ChannelConfig(rtt_ms=0))
    payload = 1460 * 100  # 100 full packets
    wire_bits = 8 * (payload + 100 * 40)
    assert ch.serialization_ms(payload, 0.0) == pytest.approx(wire_bits / 8e6 * 1e3)
    # Starting at 0.95 s: 50 ms at 8 Mbit/s, then the rest at 0.8 Mbit/s.
    expected = 50 + (wire_bits - 0.05 * 8e6) / 0.8e6 * 1e3
    assert ch.serialization_ms(payload, 0.95) == pytest.approx(expected)
    # The trace loops: time 3.5 is time 0.5.
    assert ch.serialization_ms(1000, 3.5) == pytest.approx(ch.serialization_ms(1000, 0.5))


def test_scaling_and_rtt() -> None:
    base = Channel(_steps(), ChannelConfig(rtt_ms=30)).transfer_ms(10_000, 0.0)
    scaled = Channel(_steps(), ChannelConfig(rtt_ms=30, scale=2.0)).transfer_ms(10_000, 0.0)
    assert base - 30 == pytest.approx(2 * (scaled - 30))


def test_loss_is_seeded_and_costs_time() -> None:
    cfg = ChannelConfig(rtt_ms=20, loss=GilbertElliott.from_rate(0.2, burst=3))
    a = [Channel(_steps(), cfg, seed=5).transfer_ms(50_000, i * 0.1) for i in range(50)]
    b = [Channel(_steps(), cfg, seed=5).transfer_ms(50_000, i * 0.1) for i in range(50)]
    clean = [Channel(_steps(), ChannelConfig(rtt_ms=20)).transfer_ms(50_000, i * 0.1) for i in range(50)]
    assert a == b
    assert np.mean(a) > np.mean(clean)
    assert GilbertElliott.from_rate(0.05, 2).mean_loss == pytest.approx(0.05)


def test_dead_link_still_ends() -> None:
    dead = Trace("dead", np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    assert np.isfinite(Channel(dead).serialization_ms(100, 0.0))
