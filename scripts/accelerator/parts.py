"""Cut a training npz into parts small enough to travel to the accelerator machine, and join them there.

The accelerator tool sends the working tree and the carried paths, 64 MiB in all per call; the training
split (``../shared/data/cifar10/train.npz``, 86 MB) does not fit beside the tree, and ``../shared`` does not
travel. So it goes in parts, one call each, and is joined on the machine into an npz with the same arrays in
the same order (same holdout, same scenes).

    python scripts/accelerator/parts.py split SRC.npz OUT_DIR --parts 4   # here: OUT_DIR/train-part{1..4}.npz
    python scripts/accelerator/parts.py join DIR DEST.npz                 # there: every DIR/train-part*.npz
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

PART_NAME = "train-part{}.npz"
PER_IMAGE = ("x", "y", "files")  # arrays cut along the first axis; any other array goes whole into every part


def split(src: Path, out_dir: Path, parts: int) -> list[Path]:
    """Write ``parts`` compressed npz files of consecutive images of ``src`` to ``out_dir``."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    n = len(arrays["x"])
    bounds = np.linspace(0, n, parts + 1).astype(int)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        path = out_dir / PART_NAME.format(i)
        np.savez_compressed(path, part=np.array([i, parts]),
                            **{k: (v[lo:hi] if k in PER_IMAGE else v) for k, v in arrays.items()})
        written.append(path)
    return written


def join(part_dir: Path, dest: Path) -> int:
    """Join every part in ``part_dir`` into ``dest`` (uncompressed: it stays on the machine); the number of
    images. Raises ``SystemExit`` naming the parts that are missing."""
    name = re.compile(re.escape(PART_NAME).replace(r"\{\}", r"(\d+)"))
    found = {int(m.group(1)): p for p in part_dir.glob(PART_NAME.format("*")) if (m := name.fullmatch(p.name))}
    if not found:
        raise SystemExit(f"no {PART_NAME.format('N')} in {part_dir}")
    with np.load(found[min(found)], allow_pickle=False) as first:
        total = int(first["part"][1])
    missing = sorted(set(range(1, total + 1)) - set(found))
    if missing:
        raise SystemExit(f"{part_dir}: parts {missing} of {total} have not arrived")
    loaded = []
    for i in range(1, total + 1):
        with np.load(found[i], allow_pickle=False) as data:
            loaded.append({k: data[k] for k in data.files if k != "part"})
    joined = {k: (np.concatenate([p[k] for p in loaded]) if k in PER_IMAGE else loaded[0][k]) for k in loaded[0]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dest, **joined)
    return len(joined["x"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("src", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--parts", type=int, default=4)
    j = sub.add_parser("join")
    j.add_argument("part_dir", type=Path)
    j.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "split":
        for path in split(args.src, args.out_dir, args.parts):
            print(f"{path} {path.stat().st_size / 1e6:.1f} MB")
    else:
        print(f"{args.dest}: {join(args.part_dir, args.dest)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
