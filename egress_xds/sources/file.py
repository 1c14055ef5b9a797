"""The policy file source: a YAML or JSON file on disk."""

from __future__ import annotations

from pathlib import Path

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import load_document


def load_policy_file(path: str | Path) -> PolicySet:
    """Read and validate a policy file. Raises ConfigError listing every problem with file, line and field."""
    file_path = Path(path)
    try:
        text = file_path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(file_path), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(file_path), None, "", "not a UTF-8 text file")]) from None
    document = load_document(text, str(file_path))
    return parse_document(document, base_dir=file_path.resolve().parent)
