"""Run an (injected) pod spec the way the kubelet would, inside the lab's pod network namespace, so that a test
runs exactly the commands, arguments, users, capabilities, environment and probes the spec says.

What is simulated, and how:

- **Images** become programs of this machine: `egress-xds:*` has the image's ENTRYPOINT `egress-xds` (the
  console script of this checkout), `envoyproxy/envoy:*` runs the Envoy binary of the test environment.
- **Volumes** become directories: an emptyDir is a fresh directory (mode 0777, as the kubelet makes it); a
  downwardAPI volume holds the files the kubelet would write (`metadata.labels` as `key="value"` lines). A
  container sees a volume at its `mountPath` because every argument (and the text of an `sh -c` script, and of
  the config file Envoy reads) that names a path under a mount is rewritten to the directory: two containers that
  disagree about a path get different files, so a spec that drifts fails.
- **Environment**: only the spec's `env` (literal values and the Downward API fields metadata.name and
  metadata.namespace) plus PATH; `$(VAR)` references in command and args are expanded as Kubernetes does.
- **Security context**: `runAsUser`/`runAsGroup` via setpriv; capabilities: `drop: [ALL]` + `add` becomes
  the bounding set (root keeps only the added ones). One exception, said where it happens: a non-root
  egress-xds container runs as root without any capability, because this machine's Python lives under /root
  (mode 0700), which no other uid can read.
- **Probes**: a `tcpSocket` startup probe is a TCP check in the pod namespace, an `httpGet` one is curl there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.envoy import EnvoyProcess, shared_envoy_binary
from tests.support.netns import Lab
from tests.support.processes import child_env, resolve_user, run_bounded, wait_until
from tests.support.requirements import interpreter_bin

PROBE_TIMEOUT = 30.0
# Flags the test adds to Envoy's command line, none of which changes what Envoy does for the pod: the admin
# address file (to find admin), no hot restart and a dynamic base id (several Envoys share this machine), and a
# quick access log flush (the test reads the log).
ENVOY_TEST_FLAGS = ("--disable-hot-restart", "--use-dynamic-base-id", "--file-flush-interval-msec", "100")
_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`, anything else
    (an undefined variable) stays as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(replace, text)


def downward_labels(labels: Mapping[str, str]) -> str:
    """The kubelet's format of a `metadata.labels` Downward API file: sorted `key="value"` lines."""
    return "".join(f'{key}="{value}"\n' for key, value in sorted(labels.items()))


@dataclass
class PodRun:
    lab: Lab
    pod: dict[str, Any]  # a Pod object (apiVersion, kind, metadata with name and namespace, spec)
    workdir: Path
    volumes: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        metadata = self.pod["metadata"]
        for volume in self.pod["spec"].get("volumes", []):
            path = self.workdir / "volumes" / volume["name"]
            path.mkdir(parents=True)
            path.parent.chmod(0o755)
            if "emptyDir" in volume:
                path.chmod(0o777)
            elif "downwardAPI" in volume:
                path.chmod(0o755)
                for item in volume["downwardAPI"]["items"]:
                    assert item["fieldRef"]["fieldPath"] == "metadata.labels", item
                    (path / item["path"]).write_text(downward_labels(metadata.get("labels", {})))
                    (path / item["path"]).chmod(0o644)
            else:
                raise AssertionError(f"volume kind not simulated: {volume}")
            self.volumes[volume["name"]] = path

    def container(self, name: str) -> dict[str, Any]:
        spec = self.pod["spec"]
        (found,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
        return found

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        fields = {
            "metadata.name": self.pod["metadata"]["name"],
            "metadata.namespace": self.pod["metadata"]["namespace"],
        }
        env: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = expand(variable["value"], env)
            else:
                env[variable["name"]] = fields[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def argv(self, container: dict[str, Any]) -> list[str]:
        """Entrypoint (or command) and args, `$(VAR)`-expanded, mount paths turned into volume directories."""
        env = self.env(container)
        image = container["image"]
        if "command" in container:
            command = list(container["command"])
        elif image.startswith("egress-xds:"):
            command = ["egress-xds"]  # deploy/Dockerfile ENTRYPOINT
        elif image.startswith("envoyproxy/envoy:"):
            command = [str(shared_envoy_binary())]
        else:
            raise AssertionError(f"image not simulated: {image}")
        words = [expand(word, env) for word in [*command, *container.get("args", [])]]
        return [self._rewrite(word, container) for word in words]

    def _rewrite(self, text: str, container: dict[str, Any]) -> str:
        mounts = sorted(container.get("volumeMounts", []), key=lambda mount: -len(mount["mountPath"]))
        for mount in mounts:
            pattern = rf"(?<![\w./-]){re.escape(mount['mountPath'])}(?=/|\s|'|\"|$)"
            text = re.sub(pattern, str(self.volumes[mount["name"]]), text)
        return text

    def privileges(self, container: dict[str, Any]) -> list[str]:
        """setpriv arguments for the container's security context."""
        security = container.get("securityContext", {})
        pod_security = self.pod["spec"].get("securityContext", {})
        uid = security.get("runAsUser", pod_security.get("runAsUser", 0))
        gid = security.get("runAsGroup", pod_security.get("runAsGroup", uid))
        capabilities = security.get("capabilities", {})
        kept = [] if "ALL" in capabilities.get("drop", []) else None
        if kept is not None:
            kept = [name.lower() for name in capabilities.get("add", [])]
        if uid != 0 and container["image"].startswith("egress-xds:"):
            self.notes.append(f"{container['name']}: uid {uid} cannot read this machine's Python; ran as root, no caps")
            uid, gid, kept = 0, 0, []
        wrapper = ["setpriv"]
        if uid != 0:
            wrapper += [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        if kept is not None:
            wrapper += [f"--bounding-set=-all{''.join(f',+{name}' for name in kept)}", "--inh-caps=-all"]
        return wrapper

    def process_env(self, container: dict[str, Any]) -> dict[str, str]:
        path = os.pathsep.join(
            [str(interpreter_bin()), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        )
        return {"PATH": path, "HOME": "/nonexistent", **self.env(container)}

    def run(self, name: str, *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """An init (or one-shot) container: run to completion."""
        container = self.container(name)
        argv = ["ip", "netns", "exec", self.lab.ns("pod"), *self.privileges(container), *self.argv(container)]
        return run_bounded(argv, timeout=timeout, env=self.process_env(container))

    def start_envoy(self, name: str) -> EnvoyProcess:
        """The Envoy native sidecar: started, then its startup probe (from the spec) waited for."""
        container = self.container(name)
        workdir = self.workdir / f"{name}-run"
        workdir.mkdir()
        uid, gid = resolve_user(container["securityContext"]["runAsUser"])
        os.chown(workdir, uid, gid)
        argv = self._config_seen_by(container, self.argv(container), workdir)
        argv += ["--admin-address-path", str(workdir / "admin-address.txt"), *ENVOY_TEST_FLAGS]
        wrapped = ["ip", "netns", "exec", self.lab.ns("pod"), *self.privileges(container), *argv]
        with open(workdir / "stdout.log", "wb") as stdout, open(workdir / "envoy.log", "wb") as stderr:
            proc = subprocess.Popen(
                wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=workdir,
                env=child_env(self.process_env(container)), start_new_session=True,
            )  # fmt: skip
        envoy = EnvoyProcess(proc, workdir, self.lab.ns("pod"), wrapped)
        try:
            self.wait_probe(container["startupProbe"], envoy)
        except BaseException:
            envoy.stop()
            raise
        return envoy

    def _config_seen_by(self, container: dict[str, Any], argv: list[str], workdir: Path) -> list[str]:
        """The file after `-c` names paths as Envoy's container sees them (its admin socket under a mount): a copy
        with those paths turned into volume directories, as for arguments, takes its place."""
        if "-c" not in argv:
            return argv
        index = argv.index("-c") + 1
        copy = workdir / "envoy-config-as-seen.yaml"
        copy.write_text(self._rewrite(Path(argv[index]).read_text(), container))
        copy.chmod(0o644)
        return [*argv[:index], str(copy), *argv[index + 1 :]]

    def wait_probe(self, probe: dict[str, Any], envoy: EnvoyProcess) -> None:
        if "tcpSocket" in probe:
            port = int(probe["tcpSocket"]["port"])
            check = lambda: self.lab.listening("pod", port)  # noqa: E731
        else:
            get = probe["httpGet"]
            url = f"http://127.0.0.1:{get['port']}{get['path']}"
            check = lambda: self.lab.curl("pod", ["-f", "-o", "/dev/null", url], timeout=2).returncode == 0  # noqa: E731
        wait_until(
            check,
            timeout=PROBE_TIMEOUT,
            interval=0.2,
            what=f"the startup probe {probe}",
            abort=lambda: None if envoy.running() else f"Envoy exited with {envoy.proc.returncode}",
            describe=envoy.describe,
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
