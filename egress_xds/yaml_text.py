"""YAML for other programs to read: every string that some YAML reader would take for something else is quoted.

PyYAML quotes what its own (YAML 1.1) resolver would read as a non-string, but not all of it: `y`, `n`, `Y` and
`N` are booleans in YAML 1.1 (Envoy's YAML parser reads an unquoted node id `n` as `false` and then refuses the
bootstrap), and `1e3`, `09`, `0o17` or `1_000` are numbers to a YAML 1.2 reader. Node ids and metadata come from
users, so a bootstrap printed with a plain `safe_dump` could change them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# A plain scalar that a YAML 1.1 or 1.2 reader could resolve to a boolean, null or number (or a merge key).
_NOT_A_STRING_WHEN_PLAIN = re.compile(
    r"""(?x)
    y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
    |~|null|Null|NULL|=|<<
    |[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?
    |[-+]?0[xX][0-9a-fA-F_]+|[-+]?0[oO][0-7_]+|[-+]?0[bB][01_]+
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    """
)


class _Dumper(yaml.SafeDumper):
    """`yaml.SafeDumper` that single-quotes the strings of `_NOT_A_STRING_WHEN_PLAIN`."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _NOT_A_STRING_WHEN_PLAIN.fullmatch(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """`data` as block-style YAML, keys in their order, unambiguous strings (see the module docstring)."""
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=False)
    return text
