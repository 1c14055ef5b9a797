"""What a sidecar says about its pod: `egress-xds bootstrap` flags, or the Downward API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from egress_xds.cli import main
from egress_xds.sources.kubernetes.pod_identity import parse_downward_labels

# What the kubelet writes for `fieldRef: metadata.labels` (keys sorted, values quoted like Go's %q).
DOWNWARD_LABELS = 'app="web"\napp.kubernetes.io/name="shop"\nnote="say \\"hi\\"\\n"\npod-template-hash="7d9f"\n'


def test_downward_api_labels_file() -> None:
    assert parse_downward_labels(DOWNWARD_LABELS) == {
        "app": "web",
        "app.kubernetes.io/name": "shop",
        "note": 'say "hi"\n',
        "pod-template-hash": "7d9f",
    }


@pytest.mark.parametrize("line", ["app=web", 'app="web', '="x"', "just text"])
def test_a_malformed_labels_file_is_an_error_not_no_labels(line: str) -> None:
    with pytest.raises(ValueError, match="labels:1"):
        parse_downward_labels(line + "\n", "labels")


def node_of(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = main(["bootstrap", "--node-id", "pod-1.shop", "--xds-address", "127.0.0.1:18000", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    node: dict[str, object] = yaml.safe_load(captured.out)["node"]
    return node


def test_bootstrap_takes_the_downward_api_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels"
    labels.write_text(DOWNWARD_LABELS)
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    monkeypatch.setenv("POD_NAME", "web-7d9f-abcde")
    monkeypatch.setenv("POD_LABELS_FILE", str(labels))
    metadata = node_of(capsys)["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["namespace"] == "shop" and metadata["pod"] == "web-7d9f-abcde"
    assert metadata["labels.app"] == "web" and metadata["labels.app.kubernetes.io/name"] == "shop"


def test_bootstrap_flags_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "from-env")
    monkeypatch.delenv("POD_LABELS_FILE", raising=False)
    metadata = node_of(capsys, "--namespace", "payments", "--pod-name", "p", "--pod-label", "app=api")["metadata"]
    assert metadata == {"namespace": "payments", "pod": "p", "labels.app": "api"}


def test_bootstrap_reports_an_unreadable_labels_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POD_LABELS_FILE", raising=False)
    args = ["bootstrap", "--node-id", "n", "--xds-address", "127.0.0.1:1", "--pod-labels-file", str(tmp_path / "no")]
    assert main(args) == 2
    assert "cannot read the pod labels file" in capsys.readouterr().err
