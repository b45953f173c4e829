"""Keep the best of several trained policies, judged on the training traces only.

Reads a ``splitnet simulate --traces train`` report over candidate policy files (their names are the files'
stems), copies the candidate with the highest mean reward (the objective the policies were trained for) to
``--out`` and records the choice beside it (``<out>.selection.json``: every candidate's reward, latency and
miss rate on the training traces). The evaluation traces are never looked at.

    python scripts/select_policy.py --report runs/ppo_seeds/select.json --candidates runs/ppo_seeds/*.zip \
        --out policies/assets/ppo.zip
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from policies.network.trace_sets import split_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", required=True, help="splitnet simulate --traces train --json report")
    ap.add_argument("--candidates", nargs="+", required=True, help="the policy files the report simulated")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    report = json.loads(Path(args.report).read_text())
    simulated = {Path(t).resolve() for t in report["traces"]}
    if simulated != {f.resolve() for f in split_files("train")}:
        raise SystemExit(f"{args.report} was not simulated on the training traces (policies/assets/trace_split.json)")
    files = {Path(c).stem: Path(c) for c in args.candidates}
    missing = sorted(set(files) - set(report["policies"]))
    if missing:
        raise SystemExit(f"{args.report} has no result for {', '.join(missing)}")
    rows = {name: {k: report["policies"][name][k] for k in ("reward_mean", "latency_ms_mean", "deadline_miss_rate")}
            for name in files}
    best = max(rows, key=lambda name: rows[name]["reward_mean"])
    shutil.copyfile(files[best], args.out)
    Path(f"{args.out}.selection.json").write_text(json.dumps(
        {"selected": best, "by": "mean reward on the training traces", "report": args.report,
         "report_command": report.get("command"), "candidates": rows}, indent=1) + "\n")
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["reward_mean"]):
        print(f"{name:>20}: reward {row['reward_mean']:.3f}, latency {row['latency_ms_mean']:.1f} ms, "
              f"misses {row['deadline_miss_rate'] * 100:.2f} %{'  <- kept' if name == best else ''}")
    print(f"wrote {args.out} and {args.out}.selection.json")


if __name__ == "__main__":
    main()
