"""Encode/decode ms per frame of every codec, at batch 1 and batch 32.

The learned bottleneck's encode is encoder network + entropy coding; its decode is
entropy decoding + decoder network. A bottleneck on the teacher's features and the
feature codecs work on the split tensor; a light encoder and the image codecs on the frame.

    python benchmarks/coder_speed.py [--checkpoint C] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import benchmark_arguments, setup, summary, time_ms, write_json
from splitnet.checkpoint import DEMO_DATA
from splitnet.codecs import BottleneckCodec, create_codec
from splitnet.data import load_npz, to_tensor


def main() -> None:
    ap = benchmark_arguments(__doc__)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    ckpt = setup(args)
    data = load_npz(DEMO_DATA, limit=64)
    x = to_tensor(data.images, ckpt.spec)
    rows = []
    print(f"{'codec':<28}{'batch':>6}{'encode ms/frame':>17}{'decode ms/frame':>17}{'enc+dec':>9}")

    def measure(name: str, encode, decode, batch: int, extra: dict) -> None:
        blobs = encode()
        enc = summary(time_ms(encode, max(20, args.repeats // batch)))
        dec = summary(time_ms(lambda: decode(blobs), max(20, args.repeats // batch)))
        row = {"codec": name, "batch": batch, **extra, "encode_ms_per_frame": enc["median"] / batch,
               "decode_ms_per_frame": dec["median"] / batch,
               "bytes_mean": float(np.mean([len(b) for b in blobs]))}
        row["encode_decode_ms_per_frame"] = row["encode_ms_per_frame"] + row["decode_ms_per_frame"]
        rows.append(row)
        print(f"{name:<28}{batch:>6}{row['encode_ms_per_frame']:>17.3f}{row['decode_ms_per_frame']:>17.3f}"
              f"{row['encode_decode_ms_per_frame']:>9.3f}")

    for node, point in ckpt.splits.items():
        head, _ = ckpt.teacher_split(node)
        with torch.no_grad():
            feats = head(x)
            coded = ckpt.encoder_input(node)(x)  # the teacher's features, or the frame for a light encoder
        shape, coded_shape = tuple(feats.shape[1:]), tuple(coded.shape[1:])
        encoder = point.bottleneck.config.encoder
        for width in point.bottleneck.widths:
            point.bottleneck.set_width(width)
            codec = BottleneckCodec(point.bottleneck)
            for batch in (1, 32):
                f = coded[:batch]
                measure(f"{node}/w{width:g} {codec.codec_id} {encoder}", lambda f=f, c=codec: c.encode_batch(f),
                        lambda b, c=codec, s=coded_shape: c.decode_batch(b, s), batch,
                        {"split": node, "width": width, "encoder": encoder})
        for codec_id in ("int8+zstd", "int4+zstd", "fp16"):
            codec = create_codec(codec_id)
            for batch in (1, 32):
                f = feats[:batch]
                measure(f"{node}/{codec_id}", lambda f=f, c=codec: c.encode_batch(f),
                        lambda b, c=codec, s=shape: c.decode_batch(b, s), batch, {"split": node})
    for fmt, q in (("jpeg", 75), ("webp", 75), ("png", None)):
        codec = create_codec(fmt, quality=q or 75)
        frames = [torch.from_numpy(im) for im in data.images]
        for batch in (1, 32):
            fr = frames[:batch]
            measure(f"{fmt}" + (f" q{q}" if q else ""), lambda fr=fr, c=codec: [c.encode(f) for f in fr],
                    lambda b, c=codec: [c.decode(d, data.images.shape[1:]) for d in b], batch, {"quality": q})
    write_json("coder_speed", {"checkpoint_sha256": ckpt.sha256, "threads": args.threads, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
