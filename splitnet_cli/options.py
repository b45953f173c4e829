"""Argument blocks more than one command takes, and reading their values back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import positive_float

# help of --token, --token-file and --insecure-token-over-plaintext: the server requires the token, the client sends it
_TOKEN_HELP = {
    "server": ("require this bearer token (needs TLS)", "read the bearer token from a file",
               "accept --token without TLS: anyone on the network path can read it"),
    "client": ("bearer token (sent only over TLS)", None,
               "send --token without TLS: anyone on the network path can read it"),
}


def add_token_arguments(parser: argparse.ArgumentParser, side: str) -> None:
    """``--token``, ``--token-file`` and ``--insecure-token-over-plaintext``; ``side`` is "server" or "client"."""
    token, token_file, insecure = _TOKEN_HELP[side]
    parser.add_argument("--token", default=None, help=token)
    parser.add_argument("--token-file", default=None, help=token_file)
    parser.add_argument("--insecure-token-over-plaintext", action="store_true", help=insecure)


def read_token(args: argparse.Namespace) -> str | None:
    """The bearer token: ``--token-file``'s content (stripped) when given, else ``--token``."""
    if args.token_file:
        return Path(args.token_file).read_text().strip()
    return args.token


def add_scenario_arguments(parser: argparse.ArgumentParser, traces_default: str | None = None) -> None:
    """What a simulated run is made of: ``--profile``, ``--traces`` (required unless ``traces_default``),
    ``--deadline-ms``, ``--fps`` and ``--seed``."""
    parser.add_argument("--profile", default=None, help="profile JSON (default: the shipped one)")
    parser.add_argument("--traces", default=traces_default, required=traces_default is None,
                        help="trace file or directory (recursive), or train/eval (the written-down split)"
                             + (" (default: %(default)s)" if traces_default else ""))
    parser.add_argument("--deadline-ms", type=positive_float, default=100.0, help="per-frame deadline, ms "
                        "(default: %(default)s)")
    parser.add_argument("--fps", type=positive_float, default=10.0, help="camera frames/s (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)


def load_traces(spec: str) -> list:
    """``--traces``: ``train`` or ``eval`` (the written-down split), else a trace file or directory (recursive)."""
    from policies.network.trace_sets import load_split
    from policies.network.traces import find_traces

    if spec in ("train", "eval"):
        return load_split(spec)
    traces, skipped = find_traces(spec)
    for path, why in skipped:
        print(f"note: skipped {path}: {why}", file=sys.stderr)
    if not traces:
        raise SplitnetError(f"no traces found in {spec}")
    return traces
