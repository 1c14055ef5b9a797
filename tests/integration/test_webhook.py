"""`egress-xds webhook` over real HTTPS: AdmissionReviews shaped as kube-apiserver sends them, the JSON Patch
applied with a real JSON Patch library (jsonpatch) and compared with what `egress-xds inject` writes for the
same pod; the patched pod passes the Kubernetes Pod schema. Malformed and hostile requests get an answer (never a
500, never a hang), and the certificate is re-read when its files change."""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from egress_xds.inject.mutation import EXCLUDE_PORTS_ANNOTATION, INJECT_ANNOTATION, STATUS_ANNOTATION
from tests.support.egress import egress_xds
from tests.support.tls import LabCA
from tests.support.webhook import WebhookProcess, admission_review, read_response

pytestmark = [pytest.mark.integration]

OWN_NAMESPACE = "egress-xds"
SETTINGS = "xdsAddress: egress-xds.egress-xds.svc:18000\nexcludeCidrs: [10.96.0.0/12]\n"
READ_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhook")


@pytest.fixture(scope="module")
def ca(workdir: Path) -> LabCA:
    return LabCA(workdir / "ca")


@pytest.fixture(scope="module")
def config(workdir: Path) -> Path:
    path = workdir / "inject.yaml"
    path.write_text(SETTINGS)
    return path


@pytest.fixture(scope="module")
def webhook(workdir: Path, ca: LabCA, config: Path) -> Iterator[WebhookProcess]:
    certs = ca.issue("localhost", "127.0.0.1", name="webhook")
    args = ("--config", str(config), "--namespace", OWN_NAMESPACE, "--read-timeout", str(READ_TIMEOUT))
    process = WebhookProcess(certs, ca.ca_pem, workdir / "webhook.log", args).start()
    try:
        yield process
    finally:
        assert process.stop() == 0, process.describe()  # SIGTERM: a clean stop


def pod(name: str | None = "web-1", **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": "shop", "labels": {"app": "web"}, "uid": "", "creationTimestamp": None}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = "web-7d4b9c-"  # a ReplicaSet's pod: no name yet at admission
    containers = [{"name": "app", "image": "nginx:1.27", "resources": {}, "imagePullPolicy": "IfNotPresent",
                   "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}]  # fmt: skip
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", **spec},
        "status": {},
    }


SHAPES = {
    "generate-name": pod(None),
    "named": pod(),
    "init-containers-and-a-sidecar": pod(
        initContainers=[
            {"name": "migrate", "image": "db:1"},
            {"name": "log-shipper", "image": "fluent-bit:3", "restartPolicy": "Always"},
        ]
    ),
    "excluded-port": {**pod(), "metadata": {**pod()["metadata"], "annotations": {EXCLUDE_PORTS_ANNOTATION: "5432"}}},
    "host-network": pod(hostNetwork=True),
}


def patched(original: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "patch" not in response:
        return original
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(original))
    return result


def injected_offline(config: Path, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`egress-xds inject -f FILE --config FILE` for these pods (one run, one document each)."""
    path = config.parent / "pods.yaml"
    path.write_text(yaml.safe_dump_all(pods, sort_keys=False))
    return list(yaml.safe_load_all(egress_xds("inject", "-f", str(path), "--config", str(config)).stdout))


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_patch_gives_what_inject_gives_offline(webhook: WebhookProcess, config: Path, dry_run: bool) -> None:
    expected = injected_offline(config, list(SHAPES.values()))
    for (shape, original), offline in zip(SHAPES.items(), expected, strict=True):
        response = webhook.review(admission_review(original, "shop", dry_run=dry_run))
        assert response["allowed"] is True, (shape, response)
        result = patched(original, response)
        assert result == offline, shape
        kubernetes_validate.validate({**result, "status": None}, "1.31", strict=True)
        if shape == "host-network":
            assert result["spec"] == original["spec"]
            assert any("hostNetwork" in warning for warning in response["warnings"])
        else:
            assert result["metadata"]["annotations"][STATUS_ANNOTATION] == "injected", shape
        # reinvocation (reinvocationPolicy: IfNeeded) or a second webhook run: nothing more to do
        again = webhook.review(admission_review(result, "shop"))
        assert "patch" not in again and again["allowed"], shape


def test_an_injected_pod_keeps_the_users_init_containers_after_envoy(webhook: WebhookProcess) -> None:
    original = SHAPES["init-containers-and-a-sidecar"]
    result = patched(original, webhook.review(admission_review(original, "shop")))
    names = [container["name"] for container in result["spec"]["initContainers"]]
    assert names == ["egress-capture", "egress-bootstrap", "egress-envoy", "migrate", "log-shipper"]


@pytest.mark.parametrize("namespace", ["kube-system", OWN_NAMESPACE])
def test_system_and_own_namespaces_are_never_injected(webhook: WebhookProcess, namespace: str) -> None:
    response = webhook.review(admission_review(pod(), namespace))
    assert response == {"uid": response["uid"], "allowed": True}


def test_opt_out_and_other_operations_are_admitted_unchanged(webhook: WebhookProcess) -> None:
    opted_out = pod()
    opted_out["metadata"]["annotations"] = {INJECT_ANNOTATION: "false"}
    response = webhook.review(admission_review(opted_out, "shop"))
    assert response["allowed"] and "patch" not in response and "warnings" not in response
    update = webhook.review(admission_review(pod(), "shop", operation="UPDATE"))
    assert update["allowed"] and "patch" not in update and "Pod CREATE" in update["warnings"][0]
    service = admission_review(pod(), "shop")
    service["request"]["kind"] = {"group": "", "version": "v1", "kind": "Service"}
    assert "patch" not in webhook.review(service)


def test_a_malformed_exclusion_annotation_denies_the_pod_with_its_name(webhook: WebhookProcess) -> None:
    bad = pod()
    bad["metadata"]["annotations"] = {EXCLUDE_PORTS_ANNOTATION: "postgres"}
    response = webhook.review(admission_review(bad, "shop"))
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert EXCLUDE_PORTS_ANNOTATION in response["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": '
        b'{"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "object": {"spec": 3}}}',
        b"[" * 100_000 + b"]" * 100_000,
        '{"a": "\udc80"}'.encode(errors="surrogatepass"),
    ],
    ids=["text", "array", "v1beta1", "no-request", "spec-not-object", "deep", "bad-utf8"],
)
def test_malformed_reviews_are_admitted_with_a_message(webhook: WebhookProcess, body: bytes) -> None:
    status, answer = webhook.post(body)
    assert status == 200
    response = answer["response"]
    assert response["allowed"] is True and "patch" not in response
    assert response["status"]["message"].startswith("egress-xds: ") and response["warnings"]


def test_a_body_over_the_limit_is_answered_without_being_read(webhook: WebhookProcess) -> None:
    with webhook.connect() as tls:
        tls.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999999\r\n\r\n{")
        status, body = read_response(tls)
    assert status == 200 and "larger than" in json.loads(body)["response"]["status"]["message"]


def test_a_stalled_client_is_dropped_and_does_not_block_others(webhook: WebhookProcess) -> None:
    stalled_handshake = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
    stalled_body = webhook.connect()
    stalled_body.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
    try:
        started = time.monotonic()
        assert webhook.review(admission_review(pod(), "shop"))["allowed"]  # answered while both stall
        assert time.monotonic() - started < READ_TIMEOUT
        assert stalled_body.recv(1) == b"", "the server closes a connection whose body does not come"
        assert stalled_handshake.recv(1) == b"", "and one that never starts TLS"
        assert time.monotonic() - started < READ_TIMEOUT * 3
    finally:
        stalled_handshake.close()
        stalled_body.close()


def test_other_paths_and_health(webhook: WebhookProcess) -> None:
    with webhook.connect() as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert read_response(tls) == (200, b"ok\n")
    status, _ = webhook.post(b"{}", path="/other")
    assert status == 404


def test_the_certificate_is_reread_when_its_files_change(workdir: Path, config: Path) -> None:
    first_ca, second_ca = LabCA(workdir / "rotate-1"), LabCA(workdir / "rotate-2")
    first = first_ca.issue("localhost", name="webhook")
    live = CertFilesCopy(workdir / "live")
    live.install(first.cert, first.key)
    process = WebhookProcess(live.files, first_ca.ca_pem, workdir / "rotate.log", ("--config", str(config))).start()
    try:
        assert process.review(admission_review(pod(), "shop"))["allowed"]
        second = second_ca.issue("localhost", name="webhook")
        live.install(second.cert, second.key)  # cert-manager renewed; the kubelet swapped the files
        process.ca_pem = second_ca.ca_pem
        deadline = time.monotonic() + 10
        while True:
            try:
                assert process.review(admission_review(pod(), "shop"))["allowed"]
                break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, process.describe()
                time.sleep(0.2)
        assert "certificate reloaded" in process.log()
    finally:
        assert process.stop() == 0


class CertFilesCopy:
    """A certificate and key under fixed names, replaced atomically (like the kubelet's Secret volume)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.directory = directory
        from tests.support.tls import CertFiles

        self.files = CertFiles(cert=directory / "tls.crt", key=directory / "tls.key")

    def install(self, cert: Path, key: Path) -> None:
        for source, target in ((key, self.files.key), (cert, self.files.cert)):
            temporary = target.with_suffix(".new")
            temporary.write_bytes(source.read_bytes())
            os.replace(temporary, target)


def test_start_errors_are_one_line_without_a_traceback(workdir: Path, ca: LabCA) -> None:
    certs = ca.issue("localhost", name="start-errors")
    missing = egress_xds("webhook", "--listen", "127.0.0.1:0", "--tls-cert", str(workdir / "nope.pem"),
                         "--tls-key", str(certs.key), check=False)  # fmt: skip
    assert missing.returncode == 1 and "cannot load" in missing.stderr and "Traceback" not in missing.stderr
    swapped = egress_xds("webhook", "--listen", "127.0.0.1:0", "--tls-cert", str(certs.key),
                         "--tls-key", str(certs.cert), check=False)  # fmt: skip
    assert swapped.returncode == 1 and "Traceback" not in swapped.stderr
    assert "PRIVATE KEY" not in swapped.stderr, "the key file's content is never shown"
    bad_listen = egress_xds("webhook", "--listen", "nowhere", "--tls-cert", str(certs.cert), "--tls-key",
                            str(certs.key), check=False)  # fmt: skip
    assert bad_listen.returncode == 2 and bad_listen.stderr.startswith("error: --listen ")
