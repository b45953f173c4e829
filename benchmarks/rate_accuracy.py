"""Rate–accuracy of the shipped checkpoint on the validation split (``splitnet eval`` with defaults).

    python benchmarks/rate_accuracy.py [--data ../shared/data/cifar10/val.npz] [--json OUT]
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import OUT, benchmark_arguments, setup, write_json
from splitnet.data import load_npz
from splitnet.evaluation import EvalOptions, evaluate, format_table, plot_rate_accuracy

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "val.npz"


def main() -> None:
    ap = benchmark_arguments(__doc__, threads=2)
    ap.add_argument("--data", default=str(VAL))
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    ckpt = setup(args)
    report = evaluate(ckpt, load_npz(args.data, limit=args.limit), EvalOptions())
    print(format_table(report))
    path = write_json("rate_accuracy", report, args.json)
    plot_rate_accuracy(report, path.with_suffix(".png") if args.json else OUT / "rate_accuracy.png")


if __name__ == "__main__":
    main()
