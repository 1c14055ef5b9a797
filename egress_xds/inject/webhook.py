"""`egress-xds webhook`: the HTTPS server for `review.review_response` (stdlib http.server + ssl).

- `POST /mutate`: an AdmissionReview (JSON) in, the review's response out, always `200` with a JSON body; a body
  that is too large, not JSON or not a review is answered `allowed: true` with a warning, never a 500.
- `GET /healthz`: `ok` (the Deployment's probes).
- Bounds: bodies up to `MAX_BODY_BYTES`; every socket read times out after `READ_TIMEOUT` seconds (the TLS
  handshake included, done in the connection's thread so a slow client never blocks `accept`); at most
  `MAX_CONNECTIONS` at once (more are closed at once).
- The certificate and key are re-read when either file changes (cert-manager rotates the Secret; the kubelet
  swaps the mounted files): each new connection uses the newest pair that loads; a pair that does not load (the
  two files caught mid-rotation) keeps the previous one, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from egress_xds.inject.review import review_response, unusable
from egress_xds.inject.settings import InjectSettings

MAX_BODY_BYTES = 4 * 1024 * 1024  # a Pod is at most ~1.5 MB in etcd; the review may carry it twice
READ_TIMEOUT = 10.0  # the API server's own timeoutSeconds is at most 30 (we ask for 10)
MAX_CONNECTIONS = 64
CHECK_INTERVAL = 1.0  # how often the certificate files are looked at, at most
MUTATE_PATH = "/mutate"
HEALTH_PATH = "/healthz"

log = logging.getLogger("egress_xds.webhook")


class WebhookError(Exception):
    """The server cannot start (an address in use, certificate files that do not load)."""


class CertificateFiles:
    """An `ssl.SSLContext` for the current certificate and key files, rebuilt when they change."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp = self._stat()
        self.context = self._load()  # raises ssl.SSLError / OSError at start: a clear error, exit 1
        self.loads = 1

    def current(self) -> ssl.SSLContext:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= CHECK_INTERVAL:
                self._checked = now
                stamp = self._stat()
                if stamp != self._stamp:
                    try:
                        self.context = self._load()
                    except (OSError, ssl.SSLError) as error:
                        log.warning("certificate files changed but do not load (%s); keeping the previous ones", error)
                    else:
                        self._stamp = stamp
                        self.loads += 1
                        log.info("certificate reloaded from %s", self.cert_file)
            return self.context

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self.cert_file, self.key_file):
            try:
                stat = path.stat()  # follows the kubelet's ..data symlink
                stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append((0, 0, 0))
        return tuple(stamps)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], certificates: CertificateFiles, settings: InjectSettings, own_namespace: str
    ) -> None:
        self.certificates = certificates
        self.settings = settings
        self.own_namespace = own_namespace
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.read_timeout = READ_TIMEOUT
        self.reviews = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ReviewHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            log.warning("more than %d connections at once: closing one from %s", MAX_CONNECTIONS, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.read_timeout)
            try:
                tls = self.certificates.current().wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as error:
                log.debug("TLS handshake with %s failed: %s", client_address, error)
                self.shutdown_request(request)
                return
            super().process_request_thread(tls, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s ended with an error", client_address, exc_info=log.isEnabledFor(logging.DEBUG))


class ReviewHandler(BaseHTTPRequestHandler):
    server: WebhookServer
    timeout = READ_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "egress-xds-webhook"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == HEALTH_PATH:
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != MUTATE_PATH:
            self._send(404, b"not found\n", "text/plain")
            return
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
            self._review_answer({}, "a request body with Content-Length is required", close=True)
            return
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._review_answer({}, f"the request body is larger than {MAX_BODY_BYTES} bytes", close=True)
            return
        body = self._read_body(length)
        if body is None:
            self.close_connection = True
            return
        try:
            review = json.loads(body)
        except (ValueError, RecursionError):
            self._review_answer({}, "the request body is not JSON")
            return
        try:
            outcome = review_response(review, self.server.settings, self.server.own_namespace)
        except RecursionError:
            self._review_answer({}, "the request body is nested too deeply")
            return
        except Exception:  # a bug: still an answer (the pod admitted unchanged), never a dropped connection
            log.exception("internal error on a review; this is a bug in egress-xds; the pod is admitted unchanged")
            self._review_answer(review, "internal error (a bug in egress-xds, logged by the webhook)")
            return
        self.server.reviews += 1
        log.info("review %s: %s", outcome.review["response"]["uid"] or "-", outcome.summary)
        self._send(200, json.dumps(outcome.review).encode(), "application/json")

    def _read_body(self, length: int) -> bytes | None:
        """The body, or None when the client is too slow (the whole body within the read timeout) or hangs up."""
        deadline = time.monotonic() + self.server.read_timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining > 0:
                if time.monotonic() > deadline:
                    log.warning(
                        "request body from %s not received in %gs", self.client_address, self.server.read_timeout
                    )
                    return None
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    return None
                chunks.append(chunk)
                remaining -= len(chunk)
        except (TimeoutError, OSError):
            return None
        return b"".join(chunks)

    def _review_answer(self, review: Any, problem: str, *, close: bool = False) -> None:
        """A request we cannot use as a review: still a well-formed answer (allowed, with the problem said)."""
        outcome = unusable(review, problem)
        log.warning("review %s not usable: %s", outcome.review["response"]["uid"] or "-", problem)
        if close:
            self.close_connection = True
        self._send(200, json.dumps(outcome.review).encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def start_webhook(
    settings: InjectSettings,
    *,
    listen: str,
    cert_file: Path,
    key_file: Path,
    own_namespace: str,
    read_timeout: float = READ_TIMEOUT,
) -> WebhookServer:
    """Bind and load the certificates (WebhookError with a message for humans); `serve_forever` is the caller's."""
    host, _, port_text = listen.rpartition(":")  # checked by the CLI (listen_address); port 0: any free port
    if not port_text.isdigit():
        raise WebhookError(f"--listen {listen!r}: expected HOST:PORT")
    port = int(port_text)
    try:
        certificates = CertificateFiles(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise WebhookError(f"--tls-cert/--tls-key: cannot load {cert_file} and {key_file}: {error}") from None
    try:
        server = WebhookServer((host.strip("[]"), port), certificates, settings, own_namespace)
    except OSError as error:
        raise WebhookError(f"--listen {listen}: {error.strerror or error}") from None
    server.read_timeout = read_timeout
    return server


def serve_webhook(
    settings: InjectSettings,
    *,
    listen: str,
    cert_file: Path,
    key_file: Path,
    own_namespace: str,
    log_level: str,
    read_timeout: float = READ_TIMEOUT,
) -> int:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = start_webhook(
        settings,
        listen=listen,
        cert_file=cert_file,
        key_file=key_file,
        own_namespace=own_namespace,
        read_timeout=read_timeout,
    )
    host, port = server.server_address[:2]
    log.info(
        "webhook listening on https://%s:%s%s (namespace %s is never injected)", host, port, MUTATE_PATH, own_namespace
    )

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    log.info("webhook stopped after %d reviews (pid %d)", server.reviews, os.getpid())
    return 0
