"""The "outside world" of the lab: run as ``python -m tests.support.upstream_server`` inside the inet namespace.

* HTTPS (default port 443) and plain HTTP (default port 80): any method; the body names what this server saw,
  ``host=<Host header> peer=<client ip> path=<request target> tls=<yes|no>``; ``/headers`` answers the request headers
  as a JSON object instead (tests check that no ``x-envoy-*``, ``x-request-id`` or ``x-forwarded-proto`` leaked).
* A server-first TCP service (default port 2222): sends ``BANNER egress-lab\\r\\n`` on connect, then echoes lines.

Every request and connection is logged to stderr, one line each.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BANNER = b"BANNER egress-lab\r\n"


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with a description of the request."""

    protocol_version = "HTTP/1.1"
    server_version = "egress-lab-upstream"
    timeout = 30

    def _respond(self, *, with_body: bool = True) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        tls = isinstance(self.connection, ssl.SSLSocket)
        path = self.path
        if path.split("?", 1)[0] == "/headers":
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            body = (json.dumps(headers, sort_keys=True) + "\n").encode()
            content_type = "application/json"
        else:
            host = self.headers.get("Host", "-")
            body = f"host={host} peer={self.client_address[0]} path={path} tls={'yes' if tls else 'no'}\n".encode()
            content_type = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        """Describe the request."""
        self._respond()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def do_HEAD(self) -> None:
        """Headers only."""
        self._respond(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stderr."""
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        _log(
            f"{scheme} {self.client_address[0]} {self.headers.get('Host', '-') if self.headers else '-'} "
            + format % args
        )


class TLSServer(ThreadingHTTPServer):
    """ThreadingHTTPServer doing the TLS handshake in the request thread (a silent client blocks only itself)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        """Bind ``address``; ``context`` is the server-side TLS context."""
        super().__init__(address, EchoHandler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake, then handle the request on the TLS socket."""
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            _log(f"https {client_address[0]} handshake failed: {exc}")
            return
        try:
            EchoHandler(tls, client_address, self)
        finally:
            tls.close()


class PlainServer(ThreadingHTTPServer):
    """Plain HTTP server with daemon threads."""

    daemon_threads = True


class BannerHandler(socketserver.StreamRequestHandler):
    """Server-first protocol: banner first, then echo each line."""

    timeout = 30

    def handle(self) -> None:
        """Send the banner, echo lines until EOF."""
        _log(f"banner {self.client_address[0]} connected")
        self.wfile.write(BANNER)
        for line in self.rfile:
            self.wfile.write(line)


class BannerServer(socketserver.ThreadingTCPServer):
    """Threaded TCP server for :class:`BannerHandler`."""

    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    """Start all servers and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--https-port", type=int, action="append", default=[])
    parser.add_argument("--http-port", type=int, action="append", default=[])
    parser.add_argument("--banner-port", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["http/1.1"])
    servers: list[socketserver.BaseServer] = []
    servers += [TLSServer((args.bind, port), context) for port in args.https_port or [443]]
    servers += [PlainServer((args.bind, port), EchoHandler) for port in args.http_port or [80]]
    servers += [BannerServer((args.bind, port), BannerHandler) for port in args.banner_port or [2222]]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    _log("ready: " + " ".join(f"{s.server_address}" for s in servers if isinstance(s, socketserver.TCPServer)))
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
