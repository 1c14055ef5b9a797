"""The README's marked blocks, for the tests that execute them (tests/integration/test_readme.py explains the marks).

A mark is an HTML comment on its own line, `<!-- readme-test: KIND -->`, right before a fenced block; GitHub shows
neither. Commands are read with shell rules (`shlex`: quotes, `#` comments, a trailing backslash continues).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_MARKED_BLOCK = re.compile(
    r"^<!-- readme-test: (?P<kind>[a-z-]+) -->\n```[a-z]*\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Block:
    """A marked block: its kind, the README line of its first body line, and its body."""

    kind: str
    line: int
    body: str

    def commands(self) -> list[list[str]]:
        """Each command of a shell block as argv words (continuations joined, comments and blank lines dropped)."""
        text = self.body.replace("\\\n", " ")
        return [words for words in (shlex.split(line, comments=True) for line in text.splitlines()) if words]

    def transcript(self) -> list[tuple[list[str], str]]:
        """A transcript block: `$ COMMAND` lines, each followed by the output it shows."""
        steps: list[tuple[list[str], list[str]]] = []
        for line in self.body.splitlines():
            if line.startswith("$ "):
                steps.append((shlex.split(line[2:]), []))
            elif steps:
                steps[-1][1].append(line)
            elif line.strip():
                raise ValueError(f"README.md:{self.line}: a transcript starts with a `$ ` command line")
        return [(argv, "\n".join(output).rstrip() + "\n") for argv, output in steps]


def marked_blocks(kind: str | None = None, readme: Path = README) -> list[Block]:
    """The README's marked blocks, in order (only those of `kind` when given)."""
    text = readme.read_text()
    blocks = [
        Block(match["kind"], text.count("\n", 0, match.start("body")) + 1, match["body"])
        for match in _MARKED_BLOCK.finditer(text)
    ]
    return [block for block in blocks if kind is None or block.kind == kind]


def split_and(words: list[str]) -> list[list[str]]:
    """`a && b && c` (as argv words) -> [a, b, c]."""
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return commands


def quick_start() -> tuple[list[list[str]], list[list[str]]]:
    """The two commands of the Quick start, each as the list of its `&&`-separated steps."""
    (block,) = marked_blocks("quick-start")
    install_and_demo, tests = block.commands()
    return split_and(install_and_demo), split_and(tests)
