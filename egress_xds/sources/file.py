"""The policy file source: a YAML or JSON file on disk, read once and parsed once, within fixed bounds."""

from __future__ import annotations

from pathlib import Path

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.files import read_regular_file
from egress_xds.policy.model import PolicySet
from egress_xds.policy.parse import parse_document_with_warnings
from egress_xds.policy.yaml_tree import MAX_DOCUMENT_BYTES, load_document, too_large_message


def load_policy_file(path: str | Path) -> PolicySet:
    """Read and validate a policy file. Raises ConfigError listing every problem with file, line and field; never
    any other exception, whatever the file holds (binary data, a 50 MB file, deep nesting, YAML tags)."""
    policies, _ = load_policy_file_with_warnings(path)
    return policies


def load_policy_file_with_warnings(path: str | Path) -> tuple[PolicySet, tuple[ConfigIssue, ...]]:
    """`load_policy_file`, and what the file says that is read but worth a word (a CIDR with host bits set)."""
    file_path = Path(path)
    try:
        content = read_regular_file(file_path, MAX_DOCUMENT_BYTES)  # never more than the limit, however large
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(file_path), None, "", f"cannot read: {exc.strerror}")]) from None
    return policy_from_bytes(content, file_path)


def policy_from_bytes(content: bytes, path: Path) -> tuple[PolicySet, tuple[ConfigIssue, ...]]:
    """The policy in `content`, read from `path` (for messages, and relative credentialsFile/caFile paths)."""
    source = str(path)
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ConfigError([ConfigIssue(source, None, "", too_large_message())])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (invalid byte 0x{content[exc.start]:02x})"
        raise ConfigError([ConfigIssue(source, line, "", message)]) from None
    document = load_document(text.removeprefix("\ufeff"), source)
    return parse_document_with_warnings(document, base_dir=path.resolve().parent)
