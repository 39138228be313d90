"""The documentation cannot rot: every `avslkit ...` command in a fenced bash block of README.md or
docs/**/*.md must parse against the real CLI (unknown options, missing arguments, wrong sub-command
names fail), and every relative link in them must point at an existing file.

Commands are parsed, never run: click's `make_context(..., resilient_parsing=False)` on each level
of the sub-command chain. A command line carrying the comment `# not-run` (on any of its
continuation lines) is a placeholder and is skipped; the test also checks that such lines are rare.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from avslkit.cli.main import app
from avslkit.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_LANGS = {"bash", "sh", "shell", "console"}
NOT_RUN = "# not-run"
SEPARATORS = {"&&", "||", "|", ";", ">", ">>", "2>", "2>&1", "&", "<"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced bash/sh block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line.strip())
        if match and current is None:
            current, start = ([] if match.group(1) in SHELL_LANGS else "skip"), number + 1
        elif line.strip() == "```" and current is not None:
            if current != "skip":
                blocks.append((start, current))
            current = None
        elif current is not None and current != "skip":
            current.append(line)
    return blocks


def logical_lines(lines: list[str], first: int) -> list[tuple[int, str]]:
    """Join `\\` continuations; keep the line number of the first physical line."""
    out, buffer, at = [], "", first
    for offset, line in enumerate(lines):
        if not buffer:
            at = first + offset
        stripped = line.rstrip()
        if stripped.endswith("\\") and "#" not in stripped:
            buffer += stripped[:-1] + " "
            continue
        out.append((at, buffer + line))
        buffer = ""
    if buffer:
        out.append((at, buffer))
    return out


def avslkit_commands(line: str) -> list[list[str]]:
    """Argument lists after each `avslkit` token (also `.venv/bin/avslkit`, `-m avslkit`) up to a shell separator."""
    tokens = shlex.split(line, comments=True)
    commands = []
    for i, token in enumerate(tokens):
        if token == "avslkit" or token.endswith("/avslkit"):
            args = []
            for arg in tokens[i + 1:]:
                if arg in SEPARATORS:
                    break
                args.append(arg)
            commands.append(args)
    return commands


def collect() -> tuple[list[tuple[str, list[str]]], list[str]]:
    found, skipped = [], []
    for path in DOC_FILES:
        for first, lines in shell_blocks(path.read_text(encoding="utf-8")):
            for number, line in logical_lines(lines, first):
                where = f"{path.relative_to(ROOT)}:{number}"
                if NOT_RUN in line:
                    skipped.append(where)
                    continue
                for args in avslkit_commands(line):
                    found.append((where, args))
    return found, skipped


COMMANDS, SKIPPED = collect()


def parse(args: list[str]) -> None:
    """Parse `avslkit ARGS` level by level like click would, without invoking anything."""
    command = get_command(app)
    ctx = command.make_context("avslkit", list(args), resilient_parsing=False)
    while hasattr(command, "get_command"):  # a group: the next token names the sub-command
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        rest = [*protected, *ctx.args]
        assert rest, f"'avslkit {' '.join(args)}' names no sub-command"
        name, rest = rest[0], rest[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no sub-command '{name}' in 'avslkit {' '.join(args)}'"
        command, ctx = sub, sub.make_context(name, rest, parent=ctx, resilient_parsing=False)


def test_docs_have_commands() -> None:
    # Every command page has at least one example, and placeholders stay the exception.
    pages = {where.split(":")[0] for where, _ in COMMANDS}
    for page in (ROOT / "docs" / "commands").glob("*.md"):
        assert str(page.relative_to(ROOT)) in pages, f"{page.name} has no avslkit command in a bash block"
    assert len(COMMANDS) >= 40
    assert len(SKIPPED) <= len(COMMANDS) // 4


@pytest.mark.parametrize("where,args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_parses(where: str, args: list[str]) -> None:
    try:
        parse(args)
    except Exception as error:  # click's UsageError family carries the reason
        pytest.fail(f"{where}: 'avslkit {' '.join(args)}' does not parse: {error}")


def config_layers(args: list[str]) -> list[str] | None:
    """Packaged config layers of a command whose `--set` keys are checked (None: no config)."""
    words = [a for a in args if not a.startswith("-")]
    if words[:1] == ["train"] and len(words) > 1:
        return ["train", f"methods/{words[1]}"]
    if words[:1] in (["eval"], ["preprocess"]):
        return [words[0]]
    return None


SET_COMMANDS = [(w, a) for w, a in COMMANDS if "--set" in a and config_layers(a)]


def test_some_set_overrides_documented() -> None:
    assert len(SET_COMMANDS) >= 10


@pytest.mark.parametrize("where,args", SET_COMMANDS, ids=[w for w, _ in SET_COMMANDS])
def test_set_keys_exist(where: str, args: list[str]) -> None:
    # `--set a.b=c` must name a key the packaged defaults define (a renamed key fails here).
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set" and i + 1 < len(args)]
    try:
        load_config(config_layers(args), None, overrides)
    except Exception as error:
        pytest.fail(f"{where}: {error}")


def test_parser_rejects_bad_commands() -> None:
    # The checker itself must catch what rots: unknown options, missing arguments, unknown commands.
    for bad in (["eval", "--no-such-option"], ["store", "info"], ["trian", "slavc"], ["weights", "nope"],
                ["extend-testset", "t.h5", "--annotations"]):
        with pytest.raises(Exception):
            parse(bad)
    parse(["--quiet", "store", "info", "t.h5", "--json"])


def test_extraction_handles_continuations_and_markers() -> None:
    lines = ["avslkit eval run \\", "    --test t.h5   # comment", "x=1 && .venv/bin/avslkit store info a.h5 | head",
             f"avslkit train slavc --out DIR  {NOT_RUN}"]
    joined = logical_lines(lines, 1)
    assert [n for n, _ in joined] == [1, 3, 4]
    assert avslkit_commands(joined[0][1]) == [["eval", "run", "--test", "t.h5"]]
    assert avslkit_commands(joined[1][1]) == [["store", "info", "a.h5"]]


def test_relative_links_resolve() -> None:
    broken = []
    for path in DOC_FILES:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0]
            if file_part and not (path.parent / file_part).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "broken relative links: " + ", ".join(broken)
