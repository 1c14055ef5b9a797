"""The demo's stand-in for an external HTTPS service: a tiny TLS web server on loopback (trustme certificate)."""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

import trustme

SITE_NAME = "localhost"
GREETING = "hello from the external HTTPS service, reached through the corporate proxy"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{GREETING} (path {self.path})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo shows the proxy's log, not the site's."""


class DemoSite:
    """An HTTPS server on 127.0.0.1:`port` in a background thread; `ca_pem` verifies its certificate."""

    def __init__(self, directory: Path, port: int) -> None:
        authority = trustme.CA()
        certificate = authority.issue_cert(SITE_NAME, "127.0.0.1")
        self.ca_pem = directory / "demo-ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_pem))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        self.port = port
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
