"""What a sidecar says about its pod, as Envoy node metadata: `namespace`, `pod` and `labels.<key>`.

`egress-xds bootstrap` takes them from flags, or else from the Downward API: the environment variables
`POD_NAMESPACE` and `POD_NAME` (`fieldRef: metadata.namespace` / `metadata.name`) and a labels file (a
`downwardAPI` volume item with `fieldRef: metadata.labels`, whose lines read `key="value"`). The server matches
workload selectors against these keys; see `egress_xds.policy.node.select_policy` for why they are claims.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from egress_xds.policy.node import LABEL_METADATA_PREFIX, NAMESPACE_METADATA_KEY, POD_METADATA_KEY

NAMESPACE_ENV = "POD_NAMESPACE"
POD_NAME_ENV = "POD_NAME"
LABELS_FILE_ENV = "POD_LABELS_FILE"
DEFAULT_LABELS_FILE = "/etc/podinfo/labels"


@dataclass(frozen=True)
class PodIdentity:
    """The pod a sidecar runs in. Empty fields are simply not sent."""

    namespace: str = ""
    pod_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def node_metadata(self) -> dict[str, str]:
        metadata = {f"{LABEL_METADATA_PREFIX}{key}": value for key, value in self.labels.items()}
        if self.namespace:
            metadata[NAMESPACE_METADATA_KEY] = self.namespace
        if self.pod_name:
            metadata[POD_METADATA_KEY] = self.pod_name
        return metadata


def parse_downward_labels(text: str, source: str = "labels file") -> dict[str, str]:
    """The Downward API labels file: one `key="value"` per line, the value quoted as Go's `%q` does.

    Raises ValueError naming the line: a half-read file must not silently become "no labels", which would move
    the pod to a broader policy.
    """
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, separator, quoted = line.partition("=")
        if not separator or not key or len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
            raise ValueError(f'{source}:{number}: expected key="value", got {line!r}')
        try:
            value = ast.literal_eval(quoted)
        except (ValueError, SyntaxError):
            raise ValueError(f"{source}:{number}: cannot read the quoted value {quoted!r}") from None
        labels[key] = str(value)
    return labels


def pod_identity(
    *,
    namespace: str | None,
    pod_name: str | None,
    labels: Mapping[str, str],
    labels_file: str | None,
    environ: Mapping[str, str],
) -> PodIdentity:
    """Flags first, then the Downward API environment. Labels given as flags are added to (and override) the
    labels file; the file is read when named by flag or `POD_LABELS_FILE`, or when the default path exists."""
    path_text = labels_file or environ.get(LABELS_FILE_ENV, "")
    file_labels: dict[str, str] = {}
    if path_text or Path(DEFAULT_LABELS_FILE).is_file():
        path = Path(path_text or DEFAULT_LABELS_FILE)
        try:
            text = path.read_text()
        except OSError as error:
            raise ValueError(f"cannot read the pod labels file {path}: {error.strerror}") from None
        file_labels = parse_downward_labels(text, str(path))
    return PodIdentity(
        namespace=namespace or environ.get(NAMESPACE_ENV, ""),
        pod_name=pod_name or environ.get(POD_NAME_ENV, ""),
        labels={**file_labels, **labels},
    )
