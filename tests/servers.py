"""Helpers that run ``splitnet serve`` as a real subprocess on 127.0.0.1 and make TLS certificates."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_server.process import ServerProcess, spawn_server

ROOT = Path(__file__).resolve().parents[1]


def start_server(workdir: Path, checkpoint: str, *extra: str, port: int = 0, host: str = "127.0.0.1") -> ServerProcess:
    """``splitnet serve --checkpoint checkpoint ...`` as a child process, listening on ``host:port``."""
    # A generous start timeout: on a loaded machine (CI, or training in the background) a start can be slow.
    return spawn_server("--checkpoint", checkpoint, *extra, port=port, workdir=workdir, host=host, timeout_s=900)


@contextmanager
def dns_server(records: dict[str, list[str]]) -> Iterator[str]:
    """A DNS server on 127.0.0.1 answering A queries for ``records`` (name -> IPv4 addresses, TTL 1 s).

    Yields its ``host:port``: gRPC asks it through a target ``dns://HOST:PORT/name:port``.
    """
    from dnslib import QTYPE, RR, A
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).rstrip(".")
            if request.q.qtype == QTYPE.A:
                for ip in records.get(name, []):
                    reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=1))
            return reply

    server = DNSServer(Resolver(), port=0, address="127.0.0.1", logger=DNSLogger("-request,-reply,-truncated"))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()


def health_status(channel: grpc.Channel, service: str = "", timeout: float = 5) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    def issue(cn: str, key, issuer_name, issuer_key, ca: bool, san=None, usage=None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    paths = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("splitnet test CA", ca_key, name("splitnet test CA"), ca_key, True)
    for who, san, usage in (
        ("server", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
         [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", [x509.DNSName("device-1")], [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(who, key, ca.subject, ca_key, False, san, usage)
        paths[f"{who}_cert"] = directory / f"{who}.pem"
        paths[f"{who}_key"] = directory / f"{who}.key"
        paths[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, paths[f"{who}_key"])
    paths["ca"] = directory / "ca.pem"
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # A second, unrelated CA: certificates it signs must be refused.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = issue("other CA", other_key, name("other CA"), other_key, True)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = issue("rogue", rogue_key, other.subject, other_key, False, [x509.DNSName("device-2")],
                  [ExtendedKeyUsageOID.CLIENT_AUTH])
    paths["rogue_cert"], paths["rogue_key"] = directory / "rogue.pem", directory / "rogue.key"
    paths["rogue_cert"].write_bytes(rogue.public_bytes(serialization.Encoding.PEM))
    write_key(rogue_key, paths["rogue_key"])
    return paths
