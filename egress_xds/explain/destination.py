"""What `explain` is asked about: a destination as an application would connect to it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

from egress_xds.policy.destinations import IPAddress, is_ip_literal, parse_host, parse_ip, parse_port, split_host_port


class TrafficKind(enum.Enum):
    TLS = "tls"  # the name (if any) is visible as SNI
    HTTP = "http"  # plain HTTP: the name is visible in the Host header
    TCP = "tcp"  # anything else: no name visible, only the address


@dataclass(frozen=True)
class Probe:
    """One connection: the name the client shows (SNI or Host), the address and port it connects to."""

    name: str | None
    ip: IPAddress | None
    port: int
    protocol: TrafficKind

    def __str__(self) -> str:
        host = self.name or (f"[{self.ip}]" if self.ip is not None and self.ip.version == 6 else str(self.ip))
        return f"{host}:{self.port}"


DEFAULT_PORTS = {TrafficKind.TLS: 443, TrafficKind.HTTP: 80}


def parse_destination(text: str, *, protocol: TrafficKind | None = None, address: str | None = None) -> Probe:
    """`https://host/path`, `http://host:8080`, `host`, `host:port`, `10.1.2.3:5432`, `[::1]:443`.

    Without a scheme: a name means TLS (its SNI is visible), an address alone means raw TCP, unless `protocol`
    says otherwise. `address` is the IP the name resolves to (CIDR rules need it; a name over raw TCP needs it,
    since Envoy sees only the address then). Raises ValueError.
    """
    text = text.strip()
    scheme = ""
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r} (use http://, https:// or host:port)")
        text = parts.netloc.rpartition("@")[2]
    host, port_text = split_host_port(text)
    host = parse_host(host)
    ip = parse_ip(host, unmap=False)
    if protocol is None:
        protocol = {"https": TrafficKind.TLS, "http": TrafficKind.HTTP}.get(
            scheme, TrafficKind.TCP if ip else TrafficKind.TLS
        )
    if port_text:
        port = parse_port(port_text, quote=port_text.isdigit())  # `http://alice:S3cret`: never quote a password
    elif protocol in DEFAULT_PORTS:
        port = DEFAULT_PORTS[protocol]
    else:
        raise ValueError(f"{text!r}: a raw TCP destination needs a port (host:port)")
    if address is not None:
        resolved = parse_ip(address, unmap=False)
        if resolved is None:
            raise ValueError(f"--address {address!r} is not an IP address")
        if ip is not None and resolved != ip:
            raise ValueError(f"--address {address} contradicts the destination's own address {ip}")
        ip = resolved
    name = None if is_ip_literal(host) else host
    if protocol is TrafficKind.TCP:
        if ip is None:
            raise ValueError(
                f"raw TCP shows Envoy no name, only an address: pass --address IP (the address {host} resolves to)"
            )
        name = None  # raw TCP shows no name, whatever the client resolved
    return Probe(name=name, ip=ip, port=port, protocol=protocol)
