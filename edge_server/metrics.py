"""The Prometheus endpoint: ``splitnet serve --metrics-port P`` serves ``/metrics`` over HTTP.

Exposed (read from :class:`~edge_server.stats.ServerStats`, the same figures as ``GetStats``):

- ``splitnet_stage_seconds{stage}``: histogram of each stage's time per frame (queue, decode, tail, own, total);
- ``splitnet_stage_recent_ms{stage, quantile}``: p50/p95/p99 over the recent window (as ``GetStats``);
- ``splitnet_events_total{event}``: every counter (frames_ok, batches, streams, status_*, ...);
- ``splitnet_<gauge>``: gauges such as ``splitnet_queue_depth`` and ``splitnet_streams_open``;
- ``splitnet_uptime_seconds``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_server.stats import ServerStats


class StatsCollector(Collector):
    """Counters, gauges and recent percentiles of one server, read at scrape time."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily("splitnet_events", "Events counted by the server since it started",
                                     labels=["event"])
        for name, value in sorted(self.stats.counters().items()):
            events.add_metric([name], value)
        yield events
        for name, value in sorted(self.stats.gauges().items()):
            yield GaugeMetricFamily(f"splitnet_{name}", f"Current {name.replace('_', ' ')}", value=value)
        recent = GaugeMetricFamily("splitnet_stage_recent_ms", "Stage time percentiles over the recent "
                                   "window, ms (the GetStats figures)", labels=["stage", "quantile"])
        for stage, s in self.stats.stages().items():
            for q in ("p50", "p95", "p99"):
                recent.add_metric([stage, q[1:]], s[f"{q}_ms"])
        yield recent
        yield GaugeMetricFamily("splitnet_uptime_seconds", "Seconds since the server started",
                                value=self.stats.uptime_s)


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server; :meth:`close` stops it."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5.0)


def start_metrics_server(stats: ServerStats, host: str, port: int) -> MetricsServer:
    """Serve ``stats`` (and its stage histograms) for Prometheus on ``host:port``."""
    stats.registry.register(StatsCollector(stats))
    httpd, thread = start_http_server(port, addr=host.strip("[]") or "0.0.0.0", registry=stats.registry)
    return MetricsServer(httpd, thread)
