"""What every command that writes a report shares: the command line it ran, and the JSON with provenance."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path


def command_line() -> str:
    """The ``splitnet ...`` command line of this process, quoted for a shell."""
    return "splitnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def write_json(obj: dict, path: str | None) -> None:
    """Write a report with its provenance (command, date, machine, commit) when ``path`` is given."""
    if path:
        from splitnet.provenance import provenance

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({**provenance(command_line()), **obj}, indent=2) + "\n")
        print(f"wrote {path}")
