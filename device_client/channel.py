"""Opening the gRPC channel to one or several edge servers."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

SERVICE = "splitnet.rpc.v1.SplitInference"


@dataclass(frozen=True)
class TlsOptions:
    """Client-side TLS: the CA that signed the server, and optionally a client certificate (mTLS)."""

    ca: str | None = None  # PEM; None uses the system roots
    cert: str | None = None  # PEM client certificate chain (mutual TLS)
    key: str | None = None  # PEM client private key
    server_name: str | None = None  # override the name checked against the server certificate

    def credentials(self) -> grpc.ChannelCredentials:
        read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
        if bool(self.cert) != bool(self.key):
            raise ValueError("a client certificate needs its key, and the other way round")
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


def _split_host_port(address: str) -> tuple[str, str]:
    if address.startswith("["):
        host, _, port = address[1:].partition("]:")
        return host, port
    host, _, port = address.rpartition(":")
    if not host or not port:
        raise ValueError(f"server address must be HOST:PORT, got {address!r}")
    return host, port


def target_for(servers: Sequence[str]) -> str:
    """A gRPC target naming every server, so the channel's round_robin balances across them."""
    if len(servers) == 1:
        return servers[0]
    v4, v6 = [], []
    for address in servers:
        host, port = _split_host_port(address)
        try:
            ips = [str(ipaddress.ip_address(host))]
        except ValueError:
            ips = sorted({info[4][0] for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)})
        for ip in ips:
            (v6 if ":" in ip else v4).append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    if v4 and v6:
        raise ValueError("mixing IPv4 and IPv6 servers in one channel is not supported")
    return ("ipv4:" + ",".join(v4)) if v4 else ("ipv6:" + ",".join(v6))


def open_channel(servers: Sequence[str], tls: TlsOptions | None = None, max_message_bytes: int = 4 << 20,
                 reconnect_backoff_ms: tuple[int, int] = (100, 2000)) -> grpc.Channel:
    """A channel with round_robin load balancing and client-side health checking."""
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": SERVICE},
    }
    options = [
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", reconnect_backoff_ms[0]),
        ("grpc.min_reconnect_backoff_ms", reconnect_backoff_ms[0]),
        ("grpc.max_reconnect_backoff_ms", reconnect_backoff_ms[1]),
        ("grpc.enable_retries", 0),
    ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    target = target_for(servers)
    if tls is not None:
        return grpc.secure_channel(target, tls.credentials(), options=options,
                                   compression=grpc.Compression.NoCompression)
    return grpc.insecure_channel(target, options=options, compression=grpc.Compression.NoCompression)
