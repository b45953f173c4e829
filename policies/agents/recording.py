"""A policy wrapper that writes what the policy saw and chose, one JSON line per frame.

Run the same policy live (``splitnet client --obs-log F``) and in the simulator
(``splitnet simulate --obs-log F``) and the two logs say where their inputs part ways
(e.g. a throughput estimate the live device never gets).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from policies.common.policy import Observation, Policy


class RecordingPolicy:
    """``policy``, with every observation (without the oracle's lookahead) and choice appended to ``path``."""

    def __init__(self, policy: Policy, path: str | Path) -> None:
        self.policy = policy
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("w")
        self._frame = 0

    @property
    def name(self) -> str:
        return self.policy.name

    def __getattr__(self, attr: str) -> Any:  # meta, check_actions, ... of the wrapped policy
        return getattr(self.policy, attr)

    def act(self, observation: Observation) -> str:
        choice = self.policy.act(observation)
        name = choice if isinstance(choice, str) else choice.name
        record = {k: v for k, v in asdict(observation).items() if k != "lookahead"}
        record["throughputs_mbps"] = list(record["throughputs_mbps"])
        self._file.write(json.dumps({"frame": self._frame, **record, "action": name}) + "\n")
        self._file.flush()
        self._frame += 1
        return choice

    def close(self) -> None:
        self._file.close()


def read_log(path: str | Path) -> list[dict]:
    """The records of an observation log, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
