"""`egress_xds.inject`: the settings file, the one pod mutation, and the documents walk (unit and property tests).

Every injected pod is checked against the Kubernetes 1.31 Pod schema (kubernetes-validate, strict), and the
capture/bootstrap arguments it carries against the real `egress-xds` argument parser."""

from __future__ import annotations

import copy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.cli import _parser, main
from egress_xds.inject.documents import DocumentError, inject_document, inject_yaml, pods_of
from egress_xds.inject.mutation import (
    BOOTSTRAP_CONTAINER,
    CAPTURE_CONTAINER,
    ENVOY_CONTAINER,
    EXCLUDE_CIDRS_ANNOTATION,
    EXCLUDE_PORTS_ANNOTATION,
    INJECT_ANNOTATION,
    SPIFFE_VOLUME,
    STATUS_ANNOTATION,
    InjectionError,
    inject_pod,
)
from egress_xds.inject.patch import json_patch
from egress_xds.inject.settings import InjectSettings, SettingError, check, load_settings
from egress_xds.policy.errors import ConfigError
from tests.support.pod_strategies import OTHER_DOCUMENTS, pods, workloads

KUBERNETES_VERSION = "1.31"
SETTINGS = InjectSettings()
TODAY = InjectSettings(admin_socket=None, readiness_port=None)  # only the bootstrap flags main has today
MTLS = InjectSettings(mtls=True, trust_domain="corp.example")


def plain_pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def validate_pod(pod: dict[str, Any]) -> None:
    document = {"apiVersion": "v1", "kind": "Pod", **pod, "metadata": {"name": "p", **pod.get("metadata", {})}}
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"not a valid Pod: {str(error).splitlines()[0]}\n{yaml.safe_dump(document)}")


def bootstrap_words(container: dict[str, Any]) -> list[str]:
    """The bootstrap container's command line, as the shell would split it (before the redirection)."""
    assert container["command"] == ["sh", "-c"]
    words = shlex.split(container["args"][0])
    assert words[-2:] == [">", "/etc/envoy/envoy.yaml"] and words[0] == "egress-xds"
    return words[1:-2]


# --- the shape ---------------------------------------------------------------------------------------------------


def test_the_sidecar_comes_first_and_envoy_is_a_locked_down_native_sidecar() -> None:
    pod = plain_pod(initContainers=[{"name": "migrate", "image": "db"}])
    injection = inject_pod(pod, SETTINGS)
    assert injection.injected and injection.pod["metadata"]["annotations"][STATUS_ANNOTATION] == "injected"
    init = injection.pod["spec"]["initContainers"]
    assert [c["name"] for c in init] == [CAPTURE_CONTAINER, BOOTSTRAP_CONTAINER, ENVOY_CONTAINER, "migrate"]
    envoy = init[2]
    assert envoy["restartPolicy"] == "Always"
    security = envoy["securityContext"]
    assert security["runAsUser"] == security["runAsGroup"] == 1337 and security["readOnlyRootFilesystem"]
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    assert envoy["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 15021}
    capture = init[0]
    assert capture["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert injection.pod["spec"]["containers"] == pod["spec"]["containers"]
    assert pod == plain_pod(initContainers=[{"name": "migrate", "image": "db"}]), "the input is not changed"
    validate_pod(injection.pod)


def test_the_admin_volume_and_the_spiffe_certificate_are_mounted_into_envoy_only() -> None:
    pod = inject_pod(plain_pod(), MTLS).pod
    spec = pod["spec"]
    volumes = by_name(spec["volumes"])
    assert volumes[SPIFFE_VOLUME]["csi"]["driver"] == "spiffe.csi.cert-manager.io"
    assert volumes["egress-envoy-admin"]["emptyDir"]["medium"] == "Memory"
    mounts = {
        c["name"]: {m["name"] for m in c.get("volumeMounts", [])} for c in spec["initContainers"] + spec["containers"]
    }
    assert [name for name, names in mounts.items() if SPIFFE_VOLUME in names] == [ENVOY_CONTAINER]
    assert [name for name, names in mounts.items() if "egress-envoy-admin" in names] == [ENVOY_CONTAINER]
    words = bootstrap_words(by_name(spec["initContainers"])[BOOTSTRAP_CONTAINER])
    assert words[words.index("--client-cert") + 1] == "/var/run/secrets/egress-xds/spiffe/tls.crt"
    assert words[words.index("--xds-server-name") + 1] == "egress-xds.egress-xds.svc.cluster.local"
    assert SPIFFE_VOLUME not in by_name(inject_pod(plain_pod(), SETTINGS).pod["spec"]["volumes"])
    validate_pod(pod)


def test_capture_and_todays_bootstrap_arguments_are_accepted_by_the_cli() -> None:
    init = by_name(inject_pod(plain_pod(), TODAY).pod["spec"]["initContainers"])
    capture = _parser().parse_args(init[CAPTURE_CONTAINER]["args"])
    assert (capture.port, capture.envoy_uid) == (15001, 1337)
    bootstrap = _parser().parse_args(bootstrap_words(init[BOOTSTRAP_CONTAINER]))
    assert bootstrap.xds_address == [SETTINGS.xds_address] and bootstrap.pod_labels_file == "/etc/podinfo/labels"
    assert init[ENVOY_CONTAINER]["startupProbe"]["tcpSocket"] == {"port": 15001}


def test_the_injected_bootstrap_command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bootstrap container's command line, run by the real CLI (its config directory made a temporary one):
    plain and mTLS settings give an Envoy bootstrap, and with mTLS the SDS files beside it."""
    for settings in (SETTINGS, MTLS):
        init = by_name(inject_pod(plain_pod(), settings).pod["spec"]["initContainers"])
        config_dir = tmp_path / ("mtls" if settings.mtls else "plain")
        config_dir.mkdir()
        words = [word.replace("/etc/envoy", str(config_dir)) for word in bootstrap_words(init[BOOTSTRAP_CONTAINER])]
        words = [word for word in words if word != "--pod-labels-file" and not word.startswith("/etc/podinfo")]
        assert main(words) == 0, capsys.readouterr().err
        bootstrap = yaml.safe_load(capsys.readouterr().out)
        assert bootstrap["admin"]["address"]["pipe"]["path"] == settings.admin_socket
        if settings.mtls:
            assert sorted(path.name for path in config_dir.iterdir()) == [
                "xds-client-certificate.yaml",
                "xds-trusted-ca.yaml",
            ]


def test_exclusion_annotations_reach_the_capture_arguments() -> None:
    pod = plain_pod()
    pod["metadata"]["annotations"] = {
        EXCLUDE_CIDRS_ANNOTATION: "10.1.2.3/16, 192.168.1.5",
        EXCLUDE_PORTS_ANNOTATION: "5432,22",
    }
    settings = InjectSettings(exclude_cidrs=("10.96.0.0/12",), exclude_ports=(22,))
    args = by_name(inject_pod(pod, settings).pod["spec"]["initContainers"])[CAPTURE_CONTAINER]["args"]
    cidrs = [args[i + 1] for i, word in enumerate(args) if word == "--exclude-cidr"]
    ports = [args[i + 1] for i, word in enumerate(args) if word == "--exclude-port"]
    assert cidrs == ["10.96.0.0/12", "10.1.0.0/16", "192.168.1.5/32"] and ports == ["22", "5432"]


def test_an_ipv6_exclusion_reaches_capture() -> None:
    """capture resets IPv6 it does not capture; an excluded IPv6 CIDR is what may still go direct."""
    pod = plain_pod()
    pod["metadata"]["annotations"] = {EXCLUDE_CIDRS_ANNOTATION: "fd00::/8, 2001:db8::1"}
    args = by_name(inject_pod(pod, SETTINGS).pod["spec"]["initContainers"])[CAPTURE_CONTAINER]["args"]
    cidrs = [args[i + 1] for i, word in enumerate(args) if word == "--exclude-cidr"]
    assert cidrs[-2:] == ["fd00::/8", "2001:db8::1/128"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (EXCLUDE_CIDRS_ANNOTATION, "10.0.0.0/33", "prefix length 33"),
        (EXCLUDE_CIDRS_ANNOTATION, "db.internal", "not an IP address"),
        (EXCLUDE_PORTS_ANNOTATION, "http", "not a number"),
        (EXCLUDE_PORTS_ANNOTATION, "70000", "out of range"),
    ],
)
def test_a_malformed_exclusion_annotation_names_itself(key: str, value: str, expected: str) -> None:
    pod = plain_pod()
    pod["metadata"]["annotations"] = {key: value}
    with pytest.raises(InjectionError) as caught:
        inject_pod(pod, SETTINGS)
    assert caught.value.field == f"metadata.annotations[{key}]" and expected in caught.value.message


def test_host_network_pods_are_not_captured_and_say_why() -> None:
    injection = inject_pod(plain_pod(hostNetwork=True), SETTINGS)
    assert not injection.injected and "hostNetwork" in injection.warnings[0]
    assert injection.pod["spec"] == plain_pod(hostNetwork=True)["spec"]
    assert injection.pod["metadata"]["annotations"][STATUS_ANNOTATION].startswith("skipped: hostNetwork")


def test_opted_out_pods_are_left_exactly_as_they_are() -> None:
    pod = plain_pod()
    pod["metadata"]["annotations"] = {INJECT_ANNOTATION: "false"}
    injection = inject_pod(pod, SETTINGS)
    assert injection.pod == pod and not injection.injected and not injection.warnings


def test_a_hand_made_sidecar_is_left_alone_with_a_warning() -> None:
    app = yaml.safe_load((Path(__file__).parents[2] / "deploy/examples/app.yaml").read_text())
    template = app["spec"]["template"]
    injection = inject_pod(template, SETTINGS)
    assert injection.pod == template and "already has egress-bootstrap, egress-capture (" in injection.warnings[0]


def test_a_container_with_envoys_uid_is_warned_about() -> None:
    pod = plain_pod(securityContext={"runAsUser": 1337})
    assert "'app' runs as uid 1337" in inject_pod(pod, SETTINGS).warnings[0]


# --- properties --------------------------------------------------------------------------------------------------


@given(pods(), st.sampled_from([SETTINGS, TODAY, MTLS]))
def test_injection_is_idempotent_and_the_result_is_a_valid_pod(pod: dict[str, Any], settings: InjectSettings) -> None:
    original = copy.deepcopy(pod)
    once = inject_pod(pod, settings)
    assert pod == original, "inject_pod changed its input"
    twice = inject_pod(once.pod, settings)
    assert twice.pod == once.pod and not twice.injected
    validate_pod(once.pod)
    spec = once.pod["spec"]
    if once.injected:
        names = [c["name"] for c in spec["initContainers"]]
        assert names[:3] == [CAPTURE_CONTAINER, BOOTSTRAP_CONTAINER, ENVOY_CONTAINER]
        assert names[3:] == [c["name"] for c in pod["spec"].get("initContainers", [])]
        assert spec["containers"] == pod["spec"]["containers"]
    else:
        assert spec == pod["spec"]


@given(st.lists(st.one_of(workloads(), OTHER_DOCUMENTS), min_size=1, max_size=4), st.booleans())
def test_documents_inject_every_pod_template_and_leave_other_kinds_alone(documents: list[Any], as_list: bool) -> None:
    if as_list:
        documents = [{"apiVersion": "v1", "kind": "List", "items": documents}]
    text = yaml.dump_all(documents, Dumper=yaml.CSafeDumper, sort_keys=False)
    output, _ = inject_yaml(text, SETTINGS, "in.yaml")
    results = list(yaml.load_all(output, Loader=yaml.CSafeLoader))
    flat_in = documents[0]["items"] if as_list else documents
    flat_out = results[0]["items"] if as_list else results
    assert len(flat_out) == len(flat_in)
    for before, after in zip(flat_in, flat_out, strict=True):
        pods_before, pods_after = list(pods_of(before)), list(pods_of(after))
        if not pods_before:
            assert after == before, "a document without a pod is unchanged"
            continue
        (pod_before,), (pod_after,) = pods_before, pods_after
        assert pod_after == inject_pod(pod_before, SETTINGS).pod
    again, _ = inject_yaml(output, SETTINGS, "out.yaml")
    assert again == output


# --- documents and the command -----------------------------------------------------------------------------------


def test_every_workload_kind_is_injected_and_a_cron_job_at_its_job_template() -> None:
    job = {"spec": {"template": plain_pod(restartPolicy="Never")}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "jobTemplate": job}}  # fmt: skip
    injected, _ = inject_document(cron, SETTINGS)
    pod = injected["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["initContainers"][0]["name"] == CAPTURE_CONTAINER
    kubernetes_validate.validate(injected, KUBERNETES_VERSION, strict=True)


def test_a_bad_annotation_in_a_document_names_the_document_and_the_field() -> None:
    pod = plain_pod()
    pod["metadata"]["annotations"] = {EXCLUDE_PORTS_ANNOTATION: "x"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": pod}}
    text = yaml.safe_dump_all([{"kind": "ConfigMap"}, deployment])
    with pytest.raises(DocumentError) as caught:
        inject_yaml(text, SETTINGS, "app.yaml")
    assert str(caught.value).startswith(
        f"app.yaml: document 2: Deployment/web: spec.template.metadata.annotations[{EXCLUDE_PORTS_ANNOTATION}]: "
    )


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egress_xds.cli", *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def test_inject_reads_stdin_and_writes_yaml(tmp_path: Path) -> None:
    config = tmp_path / "inject.yaml"
    config.write_text("xdsAddress: xds.corp:18000\nexcludeCidrs: [10.96.0.0/12]\n")
    pod = {"apiVersion": "v1", "kind": "Pod", **plain_pod()}
    result = run_cli("inject", "-f", "-", "--config", str(config), "--exclude-port", "22", stdin=yaml.safe_dump(pod))
    assert result.returncode == 0, result.stderr
    (out,) = yaml.safe_load_all(result.stdout)
    settings = InjectSettings(xds_address="xds.corp:18000", exclude_cidrs=("10.96.0.0/12",), exclude_ports=(22,))
    assert out == inject_pod(pod, settings).pod


def test_inject_errors_exit_1_with_file_line_and_field(tmp_path: Path) -> None:
    config = tmp_path / "inject.yaml"
    config.write_text("image: egress-xds:1\nexcludePorts: [22, http]\nresources:\n  envoy: {cpu: 1}\nbogus: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{config}:2: excludePorts: port 'http' is not a number (expected 1-65535)",
        f"{config}:4: resources.envoy.cpu: unknown key (expected one of cpuRequest, memoryRequest, memoryLimit)",
        f"{config}:5: bogus: unknown setting (expected one of adminSocket, capturePort, delta, envoyConcurrency, "
        "envoyImage, envoyLogLevel, envoyUid, excludeCidrs, excludePorts, ignoredNamespaces, image, imagePullPolicy, "
        "mtls, readinessPort, resources, spiffeCsiDriver, trustDomain, xdsAddress, xdsServerName)",
    ]
    manifest = tmp_path / "app.yaml"
    manifest.write_text("kind: Pod\nspec: [unclosed\n")
    for args in (("inject", "-f", str(manifest)), ("inject", "-f", "-", "--config", str(config))):
        result = run_cli(*args)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and result.stderr.startswith(
            f"error: {args[2] if args[2] != '-' else config}"
        )
    result = run_cli("inject", "-f", "-", "--exclude-cidr", "300.1.1.1")
    assert result.returncode == 2 and "--exclude-cidr:" in result.stderr


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "~", "/"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "~1", "x/y"]), children, max_size=3)
    ),
    max_leaves=12,
)


@given(JSON, JSON)
def test_json_patch_turns_one_value_into_the_other(before: Any, after: Any) -> None:
    """Checked by another implementation (jsonpatch), with keys that need RFC 6901 escaping."""
    assert jsonpatch.apply_patch(copy.deepcopy(before), json_patch(before, after)) == after


@pytest.mark.parametrize(
    "image",
    ["egress-xds:0.1.0", "registry.corp:5000/platform/egress-xds:1.2", "envoyproxy/envoy:v1.40.0",
     "ghcr.io/x/y@sha256:" + "a" * 64],
)  # fmt: skip
def test_image_references_are_accepted(image: str) -> None:
    assert InjectSettings(image=image, envoy_image=image) == check(InjectSettings(image=image, envoy_image=image))


@pytest.mark.parametrize("image", ["http://user:pw@proxy:3128", "Egress:1", "x:", "a b", "-x", "x@sha256:12"])
def test_what_is_not_an_image_reference_is_refused(image: str) -> None:
    with pytest.raises(SettingError, match=r"^image: "):
        check(InjectSettings(image=image))
