"""The environment source: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, upper case first, as Go's httpproxy reads them."""

from __future__ import annotations

from collections.abc import Mapping

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import LocatedDocument

SOURCE_NAME = "environment"
# policy field -> the environment variables that feed it, in order of precedence
VARIABLES = {
    "httpProxy": ("HTTP_PROXY", "http_proxy"),
    "httpsProxy": ("HTTPS_PROXY", "https_proxy"),
    "noProxy": ("NO_PROXY", "no_proxy"),
}


def policy_from_environment(environ: Mapping[str, str]) -> PolicySet:
    """One policy for every node, built from the proxy variables. Raises ConfigError naming the variable."""
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
    try:
        return parse_document(LocatedDocument(SOURCE_NAME, fields))
    except ConfigError as error:
        raise ConfigError(_rename(issue, used) for issue in error.issues) from None


def _rename(issue: ConfigIssue, used: Mapping[str, str]) -> ConfigIssue:
    field = issue.path.split("[", 1)[0].split(".", 1)[0]
    return ConfigIssue(issue.source, None, used.get(field, issue.path), issue.message)
