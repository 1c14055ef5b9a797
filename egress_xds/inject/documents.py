"""Applying `inject_pod` to Kubernetes documents: every pod template of the workload kinds, inside `List`s too;
every other document unchanged. Multi-document YAML in, multi-document YAML out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from egress_xds.inject.mutation import InjectionError, inject_pod
from egress_xds.inject.settings import InjectSettings

# kind -> the path of its pod (metadata + spec) inside the document
POD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LIST_KINDS = ("List",)  # and every `XxxList` with `items`
MAX_LIST_DEPTH = 8


class DocumentError(ValueError):
    """A document that cannot be injected: `where` names it (document index, kind/name, field)."""


@dataclass(frozen=True)
class Note:
    """A warning about one pod (which document, which workload)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def inject_document(document: Any, settings: InjectSettings, where: str = "", depth: int = 0) -> tuple[Any, list[Note]]:
    """One parsed document with every pod in it injected (a new object), and the warnings."""
    if not isinstance(document, dict):
        return document, []
    kind = document.get("kind")
    name = _name(document)
    label = f"{where}{kind}/{name}" if kind else where.rstrip(" ")
    if (
        isinstance(kind, str)
        and (kind in LIST_KINDS or kind.endswith("List"))
        and isinstance(document.get("items"), list)
    ):
        if depth >= MAX_LIST_DEPTH:
            raise DocumentError(f"{label}: Lists nested deeper than {MAX_LIST_DEPTH}")
        notes: list[Note] = []
        items = []
        for index, item in enumerate(document["items"]):
            injected, item_notes = inject_document(item, settings, f"{label} items[{index}] ", depth + 1)
            items.append(injected)
            notes += item_notes
        return {**document, "items": items}, notes
    path = POD_PATHS.get(kind) if isinstance(kind, str) else None
    if path is None:
        return document, []
    pod = _get(document, path)
    if not isinstance(pod, dict):
        return document, [Note(label, f"no pod template at {'.'.join(path)}; left as it is")]
    try:
        injection = inject_pod(pod, settings)
    except InjectionError as error:
        field = ".".join([*path, error.field]) if path else error.field
        raise DocumentError(f"{label}: {field}: {error.message}") from None
    return _set(document, path, injection.pod), [Note(label, warning) for warning in injection.warnings]


def inject_yaml(text: str, settings: InjectSettings, source: str) -> tuple[str, list[Note]]:
    """Multi-document YAML in, YAML out (`---` between documents); DocumentError names the document."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise DocumentError(f"{source}{line}: {problem}") from None
    outputs = []
    notes: list[Note] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        injected, document_notes = inject_document(document, settings, f"{source}: document {index + 1}: ")
        outputs.append(injected)
        notes += document_notes
    return "---\n".join(yaml.dump(document, Dumper=_Dumper, sort_keys=False) for document in outputs), notes


def pods_of(document: Any) -> Iterator[dict[str, Any]]:
    """Every pod (Pod object or template) in a document, Lists included: what `inject` changes."""
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from pods_of(item)
        return
    path = POD_PATHS.get(kind) if isinstance(kind, str) else None
    if path is not None:
        pod = _get(document, path)
        if isinstance(pod, dict):
            yield pod


def _name(document: dict[str, Any]) -> str:
    metadata: dict[str, Any] = document["metadata"] if isinstance(document.get("metadata"), dict) else {}
    return str(metadata.get("name") or (f"{metadata['generateName']}*" if metadata.get("generateName") else "?"))


def _get(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _set(document: dict[str, Any], path: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
    if not path:
        return value
    head, *rest = path
    return {**document, head: _set(document[head], tuple(rest), value)}
