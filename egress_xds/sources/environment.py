"""The environment source: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, upper case first, as Go's httpproxy reads them.

A server reads its environment as it finds it, and real corporate NO_PROXY values carry entries meant for other
clients (`<local>` for Windows, `10.*` for a shell glob): a bad NO_PROXY entry is ignored with a warning, the
valid entries apply, as Go ignores them. A proxy value without a scheme (`proxy.corp:3128`) is read as
`http://proxy.corp:3128`, as Go's httpproxy reads it, with a warning. A policy file stays strict (a bad entry is an
error, a URL needs its scheme: it was written for egress-xds). A missing or bad proxy URL is fatal here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet
from egress_xds.policy.parse import parse_document_with_warnings
from egress_xds.policy.proxy_url import ProxyUrlError, parse_proxy_url
from egress_xds.policy.yaml_tree import LocatedDocument

SOURCE_NAME = "environment"
# policy field -> the environment variables that feed it, in order of precedence
VARIABLES = {
    "httpProxy": ("HTTP_PROXY", "http_proxy"),
    "httpsProxy": ("HTTPS_PROXY", "https_proxy"),
    "noProxy": ("NO_PROXY", "no_proxy"),
}


@dataclass(frozen=True)
class EnvironmentPolicy:
    """The policy built from the proxy variables; one warning per ignored NO_PROXY entry and per proxy value
    read as http:// for want of a scheme."""

    policies: PolicySet
    warnings: tuple[ConfigIssue, ...]  # source "environment", path the variable, "entry N 'x' ignored: why"


def load_environment_policy(environ: Mapping[str, str]) -> EnvironmentPolicy:
    """One policy for every node, built from the proxy variables. Raises ConfigError naming the variable when
    neither proxy variable is set or a proxy URL is bad (messages never contain credentials)."""
    fields: dict[str, str] = {}
    used: dict[str, str] = {}
    for field, names in VARIABLES.items():
        for name in names:
            if environ.get(name):
                fields[field] = environ[name]
                used[field] = name
                break
    if "httpProxy" not in fields and "httpsProxy" not in fields:
        raise ConfigError(
            [ConfigIssue(SOURCE_NAME, None, "", "neither HTTP_PROXY nor HTTPS_PROXY (nor lower case) is set")]
        )
    # Here a proxy value cannot name an entry of `proxies` (there are none): without a scheme it means http://.
    unschemed: list[ConfigIssue] = []
    for field in ("httpProxy", "httpsProxy"):
        if field in fields and "://" not in fields[field]:
            fields[field] = f"http://{fields[field].strip()}"
            unschemed.append(_read_as_http(fields[field], used[field]))
    try:
        policies, warnings = parse_document_with_warnings(LocatedDocument(SOURCE_NAME, fields), lenient_no_proxy=True)
    except ConfigError as error:
        raise ConfigError(_rename(issue, used) for issue in error.issues) from None
    renamed = tuple(_rename(warning, used) for warning in warnings)
    return EnvironmentPolicy(policies, (*unschemed, *renamed))


def policy_from_environment(environ: Mapping[str, str]) -> PolicySet:
    """`load_environment_policy` without the warnings (for callers that do not report them)."""
    return load_environment_policy(environ).policies


def _rename(issue: ConfigIssue, used: Mapping[str, str]) -> ConfigIssue:
    field = issue.path.split("[", 1)[0].split(".", 1)[0]
    return ConfigIssue(issue.source, None, used.get(field, issue.path), issue.message)


def _read_as_http(url: str, variable: str) -> ConfigIssue:
    """The warning for a value given without a scheme. It shows only the host and port, never a `user:pass@`; a
    value that does not parse even with http:// is reported by the parser (as an error naming the variable)."""
    try:
        parsed = parse_proxy_url(url)
    except ProxyUrlError:
        shown = "http://"
    else:
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        shown = f"http://{host}:{parsed.port}"
    return ConfigIssue(
        SOURCE_NAME,
        None,
        variable,
        f"no scheme: read as {shown}, as Go's httpproxy does (write http:// or https:// to say which)",
    )
