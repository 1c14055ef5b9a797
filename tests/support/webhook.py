"""`egress-xds webhook` as a real process on loopback, and a client that talks to it as the API server does
(HTTPS, `POST /mutate`, an `admission.k8s.io/v1` AdmissionReview)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import child_env, kill_group, tail, wait_until
from tests.support.tls import CertFiles

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"webhook listening on https://127\.0\.0\.1:(\d+)/mutate")


@dataclass
class WebhookProcess:
    certs: CertFiles
    ca_pem: Path
    log_path: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)

    def start(self) -> WebhookProcess:
        argv = [sys.executable, "-m", "egress_xds.cli", "webhook", "--listen", "127.0.0.1:0",
                "--tls-cert", str(self.certs.cert), "--tls-key", str(self.certs.key), *self.args]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT,
                env=child_env({"PYTHONPATH": str(REPO_ROOT)}),
            )  # fmt: skip
        found = wait_until(
            lambda: LISTENING.search(self.log()),
            timeout=20,
            what="the webhook to listen",
            abort=lambda: None if self.proc is None or self.proc.poll() is None else "the webhook exited",
            describe=self.describe,
        )
        self.port = int(found.group(1))
        return self

    def stop(self) -> int | None:
        return kill_group(self.proc) if self.proc is not None else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self) -> str:
        return f"--- egress-xds webhook log ---\n{tail(self.log_path)}"

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        return context

    def connect(self, *, timeout: float = 10) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.context().wrap_socket(raw, server_hostname="localhost")

    def post(self, body: bytes, *, path: str = "/mutate", timeout: float = 10) -> tuple[int, dict[str, Any]]:
        """POST raw bytes; the status and the JSON body of the answer."""
        with self.connect(timeout=timeout) as tls:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            tls.sendall(request + body)
            status, payload = read_response(tls)
        return status, json.loads(payload) if payload.startswith(b"{") else {}

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.post(json.dumps(review).encode())
        assert status == 200, (status, answer, self.describe())
        response: dict[str, Any] = answer["response"]
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        return response


def read_response(tls: ssl.SSLSocket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


def admission_review(
    pod: dict[str, Any], namespace: str, *, operation: str = "CREATE", dry_run: bool = False
) -> dict[str, Any]:
    """An AdmissionReview as kube-apiserver sends it for `POST /api/v1/namespaces/NS/pods` (Kubernetes API
    reference, admission.k8s.io/v1): `name` is absent while the pod has only a `generateName`, `oldObject` is null
    on CREATE, `options` carries the CreateOptions."""
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "0b9a7e8f-51f4-4d8e-9e3a-3b3d1c6f2a10",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
        },
        "object": pod,
        "oldObject": None,
        "dryRun": dry_run,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    name = (pod.get("metadata") or {}).get("name")
    if name:
        request["name"] = name
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}
