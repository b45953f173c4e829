"""``splitnet``: the top-level parser and its global options, one sub-command group per module of
:mod:`splitnet_cli.commands`, and the one top-level error handler. The command modules only
parse arguments, call into the packages and print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import positive_int
from splitnet_cli.commands import COMMANDS


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``splitnet serve: error: argument --max-batch: must be ... (see --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from splitnet import __version__

    parser = _Parser(prog="splitnet", description="Split computing for edge devices.")
    parser.add_argument("--version", action="version", version=f"splitnet {__version__}")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this module first (it registers your models with splitnet.register_model); "
                             "repeatable")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def import_user_modules(args: argparse.Namespace) -> None:
    """Import ``--import`` modules (and installed ``splitnet.models`` entry points) before the command."""
    if getattr(args, "imports", None):
        from splitnet.models import load_plugins

        load_plugins(args.imports)


def _error_line(exc: BaseException) -> str:
    """One line for an expected failure: the message, or the exception type when there is none."""
    import grpc

    if isinstance(exc, grpc.FutureTimeoutError):
        return "the server did not become ready in time (is it running, and is the address right?)"
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return f"RPC failed: {getattr(code, 'name', code)}: {details}"
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (SplitnetError, OSError, ValueError)) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Every failure ends in one line on stderr and a non-zero exit status
    (2: bad input or state, 70: an unexpected internal error, 130: interrupted); ``--debug``
    re-raises so the traceback shows."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "json", None):  # a report will be written: name the code it comes from now
        from splitnet.provenance import remember_start

        remember_start()
    if not args.debug:  # gRPC's C core would print its own copy of a bind error before ours
        import os

        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        import_user_modules(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one top-level handler: one line, no traceback
        if args.debug:
            raise
        import grpc

        # RuntimeError: gRPC's "failed to bind", torch's size mismatches on user weights
        expected = (SplitnetError, OSError, ValueError, RuntimeError, grpc.RpcError, grpc.FutureTimeoutError)
        line = _error_line(exc)
        if isinstance(exc, expected):
            print(f"splitnet: error: {line}", file=sys.stderr)
            return 2
        print(f"splitnet: internal error: {line} (run with --debug for the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
