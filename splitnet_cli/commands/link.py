"""``splitnet link``: the TCP proxy that shapes traffic to a throughput trace, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

from splitnet_cli.argtypes import host_port, nonnegative_float, positive_float, probability


def add_parser(sub: argparse._SubParsersAction) -> None:
    lk = sub.add_parser("link", help="TCP proxy that shapes traffic to a throughput trace")
    lk.add_argument("--listen", type=host_port, default="127.0.0.1:0", help="HOST:PORT to accept clients on")
    lk.add_argument("--upstream", type=host_port, required=True, help="HOST:PORT of the real server")
    lk.add_argument("--trace", required=True, help="trace file (any supported format)")
    lk.add_argument("--rtt-ms", type=nonnegative_float, default=40.0)
    lk.add_argument("--jitter-ms", type=nonnegative_float, default=0.0,
                    help="standard deviation of the RTT's Gaussian jitter (ms), as in the simulator's scenario")
    lk.add_argument("--loss", type=probability, default=0.0, help="mean packet loss, seen as retransmission stalls")
    lk.add_argument("--scale", type=positive_float, default=1.0, help="multiply the trace's throughput by this")
    lk.add_argument("--start-s", type=nonnegative_float, default=0.0, help="trace time to start at")
    lk.add_argument("--seed", type=int, default=0)
    lk.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from policies.network.link import LinkOptions, run_link
    from policies.network.traces import load_trace

    trace = load_trace(args.trace)
    opts = LinkOptions(args.listen, args.upstream, args.rtt_ms, args.loss, args.scale, args.start_s, args.seed,
                       jitter_ms=args.jitter_ms)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_link(trace, opts, lambda msg: print(msg, flush=True), stop)

    asyncio.run(main())
    return 0
