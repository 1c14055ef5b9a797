"""How the server reaches the API server: a kubeconfig if one is named, in-cluster config inside a pod, else the
default kubeconfig (`KUBECONFIG` or `~/.kube/config`), exactly as kubectl decides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import SERVICE_HOST_ENV_NAME, InClusterConfigLoader

from egress_xds.policy.errors import ConfigError, ConfigIssue

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ClientSettings:
    kubeconfig: Path | None = None
    context: str | None = None
    # Where the projected service-account token and CA are mounted (a setting so tests can use their own).
    service_account_dir: Path = SERVICE_ACCOUNT_DIR


def api_client(settings: ClientSettings, environ: Mapping[str, str]) -> client.ApiClient:
    """Raises ConfigError (printed by the CLI without a traceback) when no configuration is usable."""
    try:
        return _load(settings, environ)
    except ConfigException as error:
        where = "in-cluster" if settings.kubeconfig is None and environ.get(SERVICE_HOST_ENV_NAME) else "kubeconfig"
        raise ConfigError([ConfigIssue("kubernetes", None, "", f"no usable {where} configuration: {error}")]) from None


def _load(settings: ClientSettings, environ: Mapping[str, str]) -> client.ApiClient:
    if settings.kubeconfig is None and environ.get(SERVICE_HOST_ENV_NAME):
        configuration = client.Configuration()
        # try_refresh_token: projected tokens expire (1 h by default); the loader re-reads the file every minute.
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(settings.service_account_dir / "token"),
            cert_filename=str(settings.service_account_dir / "ca.crt"),
            try_refresh_token=True,
            environ=environ,
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    kubeconfig = str(settings.kubeconfig) if settings.kubeconfig is not None else None
    loaded: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=settings.context
    )
    return loaded


def describe(api: client.ApiClient) -> str:
    """The server URL, for the log (never the token)."""
    return str(api.configuration.host)
