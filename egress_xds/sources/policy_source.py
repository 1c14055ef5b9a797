"""The static policy source a command reads: a policy file (`--config`) or the environment (`--from-env`).

A file is strict (any problem is an error; warnings are only for values read as written but worth a word, such
as a CIDR with host bits set); the environment is lenient the way Go's httpproxy is: a NO_PROXY
entry that cannot be used is a warning and is left out (see `environment.load_environment_policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from egress_xds.policy.errors import ConfigIssue
from egress_xds.policy.model import PolicySet
from egress_xds.sources.environment import SOURCE_NAME, load_environment_policy
from egress_xds.sources.file import load_policy_file_with_warnings


@dataclass(frozen=True)
class LoadedPolicy:
    policies: PolicySet
    warnings: tuple[ConfigIssue, ...] = ()


@dataclass(frozen=True)
class PolicySource:
    config: Path | None  # None: the environment
    environ: Mapping[str, str]

    @property
    def name(self) -> str:
        """The file path, or "environment"."""
        return str(self.config) if self.config is not None else SOURCE_NAME

    def load(self) -> LoadedPolicy:
        """Read and validate the source. Raises ConfigError (file:line: field: message for every problem)."""
        if self.config is not None:
            return LoadedPolicy(*load_policy_file_with_warnings(self.config))
        loaded = load_environment_policy(self.environ)
        return LoadedPolicy(loaded.policies, tuple(loaded.warnings))
