"""``splitnet link``: a TCP proxy that makes real traffic experience a throughput trace.

Bytes from the client to the upstream server (the uplink) leave the proxy at the
trace's rate, integrated over time as in the simulator, one packet (1460 bytes) at a
time on one link shared by every connection; each packet then waits the RTT less half
of it (with the RTT's jitter, drawn per packet as the simulator draws it per transfer). A
Gilbert–Elliott loss stalls the link for one RTT per lost packet (a retransmission),
since TCP hides the loss itself. Bytes back to the client only wait half the RTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from policies.network.channel_models import MSS_BYTES, Channel, ChannelConfig, GilbertElliott
from policies.network.traces import Trace

log = logging.getLogger("splitnet.link")


@dataclass
class LinkOptions:
    listen: str = "127.0.0.1:0"
    upstream: str = "127.0.0.1:50051"
    rtt_ms: float = 40.0
    loss: float = 0.0
    scale: float = 1.0
    start_s: float = 0.0  # trace time at which the proxy starts
    seed: int = 0
    jitter_ms: float = 0.0  # standard deviation of the RTT's Gaussian jitter (ms)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class ShapedLink:
    """The shared uplink: when each chunk leaves, given the trace, earlier chunks and losses."""

    def __init__(self, trace: Trace, opts: LinkOptions) -> None:
        cfg = ChannelConfig(scale=opts.scale, rtt_ms=opts.rtt_ms, jitter_ms=opts.jitter_ms,
                            loss=GilbertElliott.from_rate(opts.loss))
        self.channel = Channel(trace, cfg, seed=opts.seed)
        self.opts = opts
        self.t0 = time.monotonic() - opts.start_s
        self.free_at = 0.0  # trace time the link is next idle
        self.bytes_sent = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def uplink_delay_s(self) -> float:
        """How long a packet takes to the server after leaving the link: an RTT sample (jitter included) less
        the half RTT the answer takes back."""
        return max(0.0, self.channel.rtt_sample_ms() - self.opts.rtt_ms / 2) / 1e3

    def schedule(self, nbytes: int) -> float:
        """Trace time at which ``nbytes`` (one packet) have left the link."""
        start = max(self.now(), self.free_at)
        done = start + self.channel.serialization_ms(nbytes, start) / 1e3
        done += self.channel._lost_packets(1) * self.opts.rtt_ms / 1e3
        self.free_at = done
        self.bytes_sent += nbytes
        return done


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: ShapedLink | None,
                delay_s: float, clock) -> None:
    """Copy bytes, each chunk delivered at its (shaped) departure time plus the link's uplink delay, or
    (``link`` None) ``delay_s`` after it was read."""
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            item = await queue.get()
            if item is None:
                break
            at, data = item
            wait = at - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.write_eof()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(64 * 1024)
            if not data:
                break
            if link is None:
                await queue.put((clock() + delay_s, data))
                continue
            for i in range(0, len(data), MSS_BYTES):
                chunk = data[i : i + MSS_BYTES]
                await queue.put((link.schedule(len(chunk)) + link.uplink_delay_s(), chunk))
                # Back-pressure: do not read far ahead of what the link can carry.
                ahead = link.free_at - clock()
                if ahead > 1.0:
                    await asyncio.sleep(ahead - 1.0)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        await queue.put(None)
        with contextlib.suppress(Exception):
            await task
        with contextlib.suppress(Exception):
            writer.close()


async def run_link(trace: Trace, opts: LinkOptions, ready=print, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or forever)."""
    link = ShapedLink(trace, opts)
    up_host, up_port = _host_port(opts.upstream)
    half_rtt = opts.rtt_ms / 2e3

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(up_host, up_port)
        except OSError as exc:
            log.warning("upstream %s unreachable: %s", opts.upstream, exc)
            client_w.close()
            return
        await asyncio.gather(_pump(client_r, up_w, link, half_rtt, link.now),
                             _pump(up_r, client_w, None, half_rtt, link.now))

    host, port = _host_port(opts.listen)
    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    ready(f"splitnet link listening on {host}:{bound} -> {opts.upstream} "
          f"(trace {trace.name} x{opts.scale:g}, mean {trace.mean_mbps * opts.scale:.3f} Mbit/s, "
          f"RTT {opts.rtt_ms:g} ms, jitter {opts.jitter_ms:g} ms, loss {opts.loss:g}; "
          f"trace time {opts.start_s:g} s at monotonic clock {link.t0 + opts.start_s:.3f} s)")
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
