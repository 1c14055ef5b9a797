"""The README's Commands table lists every flag each command's `--help` shows, and no flag a command lacks.

The flags of a row are read from its first cell (the command line); a command may take several rows (`render` and
`render ... --static`). The parser is egress_xds.cli's own, so a new flag without a README entry fails here.
"""

from __future__ import annotations

import argparse
import re

import pytest

from egress_xds.cli import _parser
from tests.support.readme import README

_ROW = re.compile(r"^\| `egress-xds (?P<command>[a-z]+)(?P<line>.*?)` \|", re.MULTILINE)
_FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def commands_table() -> dict[str, set[str]]:
    """Flags shown per command in the README's Commands table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].strip().split("\n\n", 1)[0]  # the table right after the title
    flags: dict[str, set[str]] = {}
    for row in _ROW.finditer(section):
        flags.setdefault(row["command"], set()).update(_FLAG.findall(row["line"]))
    return flags


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    [choices] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(choices.choices)


def shown_flags(command: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """The flags `--help` shows, each as its spellings: one of them must be in the table (every one, for a
    `--x/--no-x` pair: they do opposite things)."""
    flags: list[tuple[str, ...]] = []
    for action in command._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            flags.extend((spelling,) for spelling in action.option_strings)
        else:
            flags.append(tuple(action.option_strings))
    return flags


TABLE = commands_table()
COMMANDS = subcommands()


def test_the_table_has_a_row_for_every_command() -> None:
    assert sorted(TABLE) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_lists_every_flag_of_the_command(name: str) -> None:
    listed = TABLE.get(name, set())
    missing = [flag[-1] for flag in shown_flags(COMMANDS[name]) if not listed.intersection(flag)]
    assert not missing, f"README Commands table, egress-xds {name}: missing {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_lists_no_flag_the_command_lacks(name: str) -> None:
    known = {spelling for flag in shown_flags(COMMANDS[name]) for spelling in flag}
    unknown = sorted(TABLE.get(name, set()) - known)
    assert not unknown, f"README Commands table, egress-xds {name}: no such flag {', '.join(unknown)}"


def test_the_table_parser_sees_flags_in_a_sample_row() -> None:
    """The regexes themselves: escaped pipes, short flags, values that are not flags."""
    row = "| `egress-xds x -f FILE\\|- [--a-b K=V] [-o text\\|json] [--no-c]` | what |"
    found = _ROW.search(row)
    assert found is not None and found["command"] == "x"
    assert set(_FLAG.findall(found["line"])) == {"-f", "--a-b", "-o", "--no-c"}
