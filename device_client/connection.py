"""Opening the gRPC channel to one or several edge servers, and the errors a misconfigured client gets.

Names are resolved by gRPC itself (``dns:///host:port``), so the TLS authority is the host
name and a reconnect re-resolves it; several servers behind one name (several A/AAAA
records) are balanced with ``round_robin`` and gRPC's client-side health checks. The
bearer token travels as call credentials, which gRPC only sends over TLS.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from splitnet.errors import SplitnetError

SERVICE = "splitnet.rpc.v1.SplitInference"
# Target schemes gRPC resolves itself; a server given with one of them goes to gRPC unchanged.
SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")
INSECURE_TOKEN_FLAG = "--insecure-token-over-plaintext"

# Status codes that say the client is set up wrongly: retrying cannot help, running every frame
# locally would hide the problem. SplitClient raises ServerConfigError for them.
CONFIG_ERRORS = {
    grpc.StatusCode.UNAUTHENTICATED: "check the token (--token/--token-file)",
    grpc.StatusCode.PERMISSION_DENIED: "check the token and the client certificate",
    grpc.StatusCode.NOT_FOUND: "client and server must load the same checkpoint (model and split points)",
    grpc.StatusCode.FAILED_PRECONDITION: "client and server must load the same checkpoint "
                                         "(splitnet checkpoint info shows its sha256)",
}


class InsecureTokenError(SplitnetError):
    """A bearer token was given for a channel without TLS (and without the explicit opt-in)."""


class ServerConfigError(SplitnetError):
    """The server refused the client's configuration (credentials, model, split, weights).

    Raised by :class:`~device_client.client.SplitClient` instead of running frames locally,
    so a misconfigured client fails loudly. ``code`` is the gRPC status code.
    """

    def __init__(self, code: grpc.StatusCode, details: str = "", target: str = "") -> None:
        details = " ".join((details or "").split())  # one line
        where = f"server {target} " if target else "the server "
        super().__init__(f"{where}refused the frame: {code.name}"
                         f"{f' ({details})' if details else ''}; {CONFIG_ERRORS.get(code, 'check the setup')}")
        self.code = code
        self.details = details


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
        raise SplitnetError(f"server address must be HOST:PORT, got {address!r}")
    return host, port


def target_for(servers: Sequence[str]) -> str:
    """The gRPC target for ``servers``; gRPC resolves it (and re-resolves it when reconnecting).

    - a target with a scheme (``dns:///edge.example:50051``, ``dns://10.0.0.53/edge:50051``,
      ``ipv4:…``, ``unix:…``) is used as it is;
    - one ``HOST:PORT`` becomes ``dns:///HOST:PORT`` (the TLS authority is ``HOST``);
    - several ``IP:PORT`` become gRPC's static ``ipv4:``/``ipv6:`` address list;
    - several host names cannot share one channel: put them behind one DNS name with one
      record per server (``dns:///edge.example:50051``), or give IP addresses.
    """
    servers = [s.strip() for s in servers if s.strip()]
    if not servers:
        raise SplitnetError("no server given")
    if len(servers) == 1:
        server = servers[0]
        if server.startswith(SCHEMES):
            return server
        _split_host_port(server)
        return f"dns:///{server}"
    v4, v6 = [], []
    for address in servers:
        if address.startswith(SCHEMES):
            raise SplitnetError(f"a target with a scheme ({address}) names the servers itself: give it alone")
        host, port = _split_host_port(address)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise SplitnetError(
                f"several servers by name ({', '.join(servers)}) cannot share one channel: give one DNS name "
                "with a record per server (dns:///edge.example:50051), or IP addresses") from None
        (v6 if ip.version == 6 else v4).append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if v4 and v6:
        raise SplitnetError("mixing IPv4 and IPv6 servers in one channel is not supported")
    return ("ipv4:" + ",".join(v4)) if v4 else ("ipv6:" + ",".join(v6))


class _TokenMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                     grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call (only for the explicit plaintext opt-in)."""

    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details.method, details.timeout, (*(details.metadata or ()), self._pair),
                            details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: tuple | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


def channel_options(max_message_bytes: int = 4 << 20,
                    reconnect_backoff_ms: tuple[int, int] = (100, 2000)) -> list[tuple[str, object]]:
    """round_robin over every resolved address with client-side health checks, limits, keepalive."""
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": SERVICE},
    }
    return [
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", reconnect_backoff_ms[0]),
        ("grpc.min_reconnect_backoff_ms", reconnect_backoff_ms[0]),
        ("grpc.max_reconnect_backoff_ms", reconnect_backoff_ms[1]),
        ("grpc.enable_retries", 0),
        # Keepalive while a call is open (finds a dead link): every 5 min, which servers with gRPC's default
        # enforcement accept too (more often, and they would send GOAWAY "too_many_pings").
        ("grpc.keepalive_time_ms", 300_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def open_channel(servers: Sequence[str], tls: TlsOptions | None = None, max_message_bytes: int = 4 << 20,
                 reconnect_backoff_ms: tuple[int, int] = (100, 2000), token: str | None = None,
                 insecure_token_over_plaintext: bool = False) -> grpc.Channel:
    """A channel to ``servers`` (see :func:`target_for`); ``token`` rides as TLS-only call credentials.

    A token without TLS raises :class:`InsecureTokenError` unless ``insecure_token_over_plaintext``
    is set, in which case it is sent as plain metadata that anyone on the path can read.
    """
    target = target_for(servers)
    options = channel_options(max_message_bytes, reconnect_backoff_ms)
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    if tls is not None:
        creds = tls.credentials()
        if token:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
        return grpc.secure_channel(target, creds, options=options, compression=grpc.Compression.NoCompression)
    if token and not insecure_token_over_plaintext:
        raise InsecureTokenError("a token needs TLS (--tls or --tls-ca): without it the token crosses the network "
                                 f"readable; pass {INSECURE_TOKEN_FLAG} to send it anyway")
    channel = grpc.insecure_channel(target, options=options, compression=grpc.Compression.NoCompression)
    return grpc.intercept_channel(channel, _TokenMetadata(token)) if token else channel
