from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest
import torch

from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import (
    PayloadError,
    ShapeError,
    SplitnetError,
    UnknownCodecError,
    UnknownModelError,
    UnknownSplitPointError,
    UnknownWidthError,
)
from splitnet.pipeline import Action, DeviceSide, ServerSide, WeightsMismatchError
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb


@pytest.fixture(scope="module")
def sides(tiny_checkpoint: SplitCheckpoint) -> tuple[DeviceSide, ServerSide]:
    return DeviceSide(tiny_checkpoint), ServerSide(tiny_checkpoint)


def _reference(ckpt: SplitCheckpoint, frames: np.ndarray, action: Action) -> torch.Tensor:
    """The same computation without payloads: head -> bottleneck forward (eval) -> tail."""
    device = DeviceSide(ckpt)
    x = device.preprocess(frames)
    with torch.no_grad():
        if action.kind == "local":
            return ckpt.teacher(x)
        enc_input = ckpt.encoder_input(action.split)  # the teacher's head, or nothing for a light encoder
        b = ckpt.split(action.split).bottleneck
        b.set_width(action.width)
        return ckpt.bottleneck_tail(action.split)(b(enc_input(x))["x_hat"])


def test_actions_cover_local_splits_widths_features_and_images(sides: tuple[DeviceSide, ServerSide]) -> None:
    names = [a.name for a in sides[0].actions()]
    assert names[0] == "local"
    assert {"layer1/w0.25", "layer1/w1", "layer2/w0.5", "layer1/int8+zstd", "webp/q75"} <= set(names)
    for name in names:
        assert Action.parse(name).name == name


@pytest.mark.parametrize("name", ["layer1/w0.25", "layer1/w1", "layer2/w0.5", "layer2/w0.75"])
def test_split_inference_matches_in_process_reference(sides, tiny_checkpoint, frames, name: str) -> None:
    device, server = sides
    action = Action.parse(name)
    payloads = [convert.request_payload(pb.InferRequest.FromString(convert.request(p).SerializeToString()))
                for p in device.encode(frames, action, seq=10)]  # through the wire bytes
    assert [p.seq for p in payloads] == list(range(10, 10 + len(frames)))
    logits = server.infer(payloads)
    assert torch.allclose(logits, _reference(tiny_checkpoint, frames, action), atol=1e-5)


@pytest.mark.parametrize("name", ["layer1/int8+zstd", "layer2/fp32", "png", "webp/q90"])
def test_feature_and_image_offload(sides, tiny_checkpoint, frames, name: str) -> None:
    device, server = sides
    payloads = device.encode(frames, Action.parse(name))
    logits = server.infer(payloads)
    local = device.run_local(frames)
    assert logits.shape == local.shape
    if name in ("layer2/fp32", "png"):  # lossless paths give the local result exactly
        assert torch.allclose(logits, local, atol=1e-5)


def test_server_rejects_bad_payloads(sides, tiny_checkpoint, frames) -> None:
    device, server = sides
    good = device.encode(frames[:1], Action.parse("layer1/w0.5"))[0]
    # a frame names the weights by the first 16 hex digits of the checkpoint's sha256 (48 bytes less per frame);
    # the whole digest is accepted too, a shorter or a wrong prefix is not
    assert good.weights_sha256 == tiny_checkpoint.sha256[:16]
    assert server.infer([dataclasses.replace(good, weights_sha256=tiny_checkpoint.sha256)]).shape == (1, 10)
    cases = [
        (dict(model="resnet18"), UnknownModelError),
        (dict(weights_sha256="00" * 32), WeightsMismatchError),
        (dict(weights_sha256=tiny_checkpoint.sha256[:15]), WeightsMismatchError),
        (dict(weights_sha256=("1" if tiny_checkpoint.sha256[0] == "0" else "0") + tiny_checkpoint.sha256[1:16]),
         WeightsMismatchError),
        (dict(split="layer3"), UnknownSplitPointError),
        (dict(codec="h265"), UnknownCodecError),
        (dict(codec="hyperprior"), UnknownCodecError),
        (dict(width=0.3), UnknownWidthError),
        (dict(shape=(16, 32, 31)), ShapeError),
        (dict(data=good.data[:-2]), PayloadError),
        (dict(data=b""), PayloadError),
    ]
    for change, error in cases:
        bad = dataclasses.replace(good, **change)
        with pytest.raises(error):
            server.infer([bad])
    assert server.infer([good]).shape == (1, 10)  # still serving


def test_mixed_batches_are_refused(sides, frames) -> None:
    device, server = sides
    a = device.encode(frames[:1], Action.parse("layer1/w0.5"))
    b = device.encode(frames[:1], Action.parse("layer1/w1"))
    with pytest.raises(PayloadError, match="share"):
        server.infer(a + b)


def test_action_parse_errors() -> None:
    with pytest.raises(SplitnetError, match="cannot parse action"):
        Action.parse("teleport")


def test_threads_sharing_a_checkpoint_never_mix_widths(tiny_checkpoint, frames) -> None:
    """Device sides in several threads, each on its own width, give the bytes a lone thread gives."""
    from concurrent.futures import ThreadPoolExecutor

    names = ["layer1/w0.25", "layer1/w1", "layer2/w0.5", "layer2/w1"] * 4
    alone = {n: [p.data for p in DeviceSide(tiny_checkpoint).encode(frames, Action.parse(n))] for n in set(names)}

    def encode(name: str) -> tuple[str, list[bytes]]:
        device = DeviceSide(tiny_checkpoint)  # new per thread; its heads come from the checkpoint's cache
        return name, [p.data for _ in range(5) for p in device.encode(frames, Action.parse(name))][-len(frames):]

    with ThreadPoolExecutor(8) as pool:
        for name, blobs in pool.map(encode, names):
            assert blobs == alone[name], name


def test_batcher_runs_a_lone_unary_frame_inline_and_defers_when_busy(tiny_checkpoint, frames) -> None:
    from edge_server.batcher import DeadlineExpired, MicroBatcher

    server = ServerSide(tiny_checkpoint)
    payload = DeviceSide(tiny_checkpoint).encode(frames[:1], Action.parse("layer1/w0.5"))[0]
    batcher = MicroBatcher(server, max_batch=4)
    try:
        inline = batcher.run_inline_if_idle(payload, top_k=3)
        queued = batcher.submit(payload, top_k=3).result(timeout=10)
        assert inline is not None and inline[0] == queued[0] and len(inline[0].class_ids) == 3
        assert inline[1].batch_size == 1 and inline[1].tail_ms > 0
        counters = batcher.stats.counters()
        assert counters["frames_inline"] == 1 and counters["frames_ok"] == 2 and counters["batches"] == 2
        with batcher._running:  # a batch is running: the frame must wait its turn in the queue
            assert batcher.run_inline_if_idle(payload) is None
        with pytest.raises(SplitnetError):
            batcher.run_inline_if_idle(dataclasses.replace(payload, width=0.3))
        assert batcher.run_inline_if_idle(payload, record=False) is not None  # the caller books it
        assert batcher.stats.counters()["frames_inline"] == 1
        with pytest.raises(DeadlineExpired):  # the budget counts from the frame's receipt
            batcher.run_inline_if_idle(payload, budget_s=0.5, received=time.monotonic() - 1.0)
        assert batcher.run_inline_if_idle(payload, budget_s=0.5, received=time.monotonic()) is not None
    finally:
        batcher.close(5)


def test_the_servers_threads_run_inference_mode_for_life(tiny_checkpoint, frames) -> None:
    """The event loop (where a lone unary frame runs) and the batcher's worker enter torch's inference mode once,
    not per frame; a frame run by another thread enters it itself; the caller's thread is left as it was."""
    from edge_server.server import ServerOptions, build_server

    running = build_server(ServerOptions(address="127.0.0.1:0", torch_threads=0), checkpoint=tiny_checkpoint)
    side = running.batcher.server_side
    modes: list[bool] = []
    real_run_tail = side.run_tail

    def run_tail(*args, **kwargs):
        modes.append(torch.is_inference_mode_enabled())
        return real_run_tail(*args, **kwargs)

    side.run_tail = run_tail
    try:
        async def loop_mode() -> bool:
            return torch.is_inference_mode_enabled()

        assert asyncio.run_coroutine_threadsafe(loop_mode(), running.loop).result(10)
        payload = DeviceSide(tiny_checkpoint).encode(frames[:1], Action.parse("layer1/w0.5"))[0]
        running.batcher.submit(payload).result(timeout=10)  # the worker thread
        with running.batcher._running:  # the worker has let go of its batch
            pass
        assert running.batcher.run_inline_if_idle(payload) is not None  # this thread: entered for the frame
        assert modes == [True, True] and not torch.is_inference_mode_enabled()
    finally:
        running.stop()
