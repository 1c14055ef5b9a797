"""One `admission.k8s.io/v1` AdmissionReview in, its response out: the JSON Patch of `inject_pod`. Pure.

Never an error: a review that is malformed or not for us is answered `allowed: true` with a warning (and a
`status.message`), so a bad request can neither block a pod nor crash the server. The only refusal is a pod whose
exclusion annotations are malformed (`allowed: false`, 400, naming the annotation): injecting it without them
would capture the traffic its owner asked to keep out, and not injecting it would silently bypass the proxy.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from egress_xds.inject.mutation import InjectionError, inject_pod
from egress_xds.inject.patch import json_patch
from egress_xds.inject.settings import InjectSettings

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
MAX_UID_LENGTH = 128


@dataclass(frozen=True)
class Outcome:
    """The response document, and one line for the log."""

    review: dict[str, Any]
    summary: str


def review_response(review: Any, settings: InjectSettings, own_namespace: str) -> Outcome:
    if not isinstance(review, dict):
        return _answer("", warning="the request body is not an AdmissionReview object", summary="malformed")
    request = review.get("request")
    uid = request_uid(review)
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        return _answer(uid, warning=f"expected apiVersion {API_VERSION} kind {KIND}", summary="unexpected version")
    if not isinstance(request, dict) or not uid:
        return _answer(uid, warning="the AdmissionReview has no request or no request.uid", summary="malformed")
    if request.get("kind") != POD_KIND or request.get("operation") != "CREATE":
        what = f"{_kind_text(request.get('kind'))} {request.get('operation')}"
        return _answer(uid, warning=f"egress-xds injects only into Pod CREATE, not {what}", summary=f"ignored {what}")
    pod = request.get("object")
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        return _answer(uid, warning="request.object is not a pod", summary="malformed pod")
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
    namespace = request.get("namespace") or metadata.get("namespace") or ""
    if not isinstance(namespace, str):
        return _answer(uid, warning="request.namespace is not a string", summary="malformed namespace")
    name = _pod_name(pod, request)
    if namespace == own_namespace or namespace in settings.ignored_namespaces:
        return _answer(uid, summary=f"{namespace}/{name}: namespace {namespace} is never injected")
    try:
        injection = inject_pod(pod, settings)
    except InjectionError as error:
        message = f"egress-xds: {error.field}: {error.message}"
        return Outcome(_review(uid, allowed=False, status={"code": 400, "message": message}), f"denied: {message}")
    patch = json_patch(pod, injection.pod)
    response: dict[str, Any] = {}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    if injection.warnings:
        response["warnings"] = [f"egress-xds: {warning}" for warning in injection.warnings]
    dry = " (dry run)" if request.get("dryRun") else ""
    return Outcome(_review(uid, allowed=True, **response), f"{namespace}/{name}: {injection.reason}{dry}")


def request_uid(review: Any) -> str:
    """`request.uid` when there is a usable one, else "" (the API server then reports the answer as unusable)."""
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    return uid if isinstance(uid, str) and len(uid) <= MAX_UID_LENGTH else ""


def unusable(review: Any, problem: str) -> Outcome:
    """The answer to a request that cannot be used as it is: the pod admitted unchanged, the problem said."""
    return _answer(request_uid(review), warning=problem, summary=problem)


def _answer(uid: str, *, summary: str, warning: str | None = None) -> Outcome:
    if warning is None:
        return Outcome(_review(uid, allowed=True), summary)
    text = f"egress-xds: {warning}; the pod was admitted unchanged"
    return Outcome(_review(uid, allowed=True, warnings=[text], status={"message": text}), summary)


def _review(uid: str, **response: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, **response}}


def _pod_name(pod: dict[str, Any], request: dict[str, Any]) -> str:
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
    name = request.get("name") or metadata.get("name")
    if not name and metadata.get("generateName"):
        return f"{metadata['generateName']}*"
    return str(name or "?")[:253]


def _kind_text(kind: Any) -> str:
    if not isinstance(kind, dict):
        return "an unknown kind"
    return "/".join(str(kind.get(key, "")) for key in ("group", "version", "kind") if kind.get(key))[:200]
