"""The README's examples against the real CLI and API, so the documentation cannot drift from the code.

Every `textkd ...` line of the README's shell blocks must name a command that exists and only options that
command has. Lines of the commands with `--print-config` (teacher, distill, sweep, run) are run with it: the
recipe, the named options and the dotted overrides are all resolved and checked, and nothing is trained.
Every `textkd.name(...)` call of its Python blocks must name a public function that takes those arguments.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import textkd
from textkd.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PRINTS_CONFIG = {"teacher", "distill", "sweep", "run"}


def fenced_blocks(text: str, languages: set[str]) -> list[str]:
    """The bodies of the ```-fenced blocks whose language is in `languages` ("" for a bare fence)."""
    blocks, language, body = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, body = line[3:].strip(), []
            else:
                if language in languages:
                    blocks.append("\n".join(body) + "\n")
                language = None
        elif language is not None:
            body.append(line)
    return blocks


def readme_commands(text: str) -> list[str]:
    """Each `textkd ...` line of the shell blocks, continuation lines joined, comments and redirections cut."""
    lines = []
    for block in fenced_blocks(text, {"bash", "sh", "console", ""}):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#|\s>\s", line)[0].strip()
            if line.startswith("textkd "):
                lines.append(line)
    return lines


def cli_commands() -> dict[str, set[str]]:
    """Every command (`data list` for a group's) with the option names it accepts."""
    found: dict[str, set[str]] = {}

    def walk(group, prefix: list[str]) -> None:
        context = group.context_class(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            if hasattr(command, "list_commands"):  # a group (typer ships its own click: no isinstance)
                walk(command, [*prefix, name])
            else:
                found[" ".join([*prefix, name])] = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = cli_commands()
LINES = readme_commands(README)


def split_command(line: str) -> tuple[str, list[str]]:
    """`textkd data show x --y` -> ("data show", ["x", "--y"]); an unknown command is an error."""
    words = shlex.split(line)[1:]
    for size in (2, 1):
        name = " ".join(words[:size])
        if name in COMMANDS:
            return name, words[size:]
    raise ValueError(f"no textkd command in {line!r}")


def unknown_options(line: str) -> list[str]:
    """The options of a README line that its command does not have (dotted config overrides excepted)."""
    name, words = split_command(line)
    options = [w.split("=")[0] for w in words if w.startswith("-") and not re.fullmatch(r"-[\d.]+", w)]
    return [o for o in options if o not in COMMANDS[name] and not (o.startswith("--") and "." in o)]


def test_the_readme_checker_finds_what_is_wrong():
    text = (
        "```python\nx = 1\n```\ntextkd prose --is-skipped\n"
        "```bash\ntextkd bench a b --runs 5 \\\n  --bogus 1   # comment --also\ntextkd nothing here\n```\n"
    )
    lines = readme_commands(text)
    assert lines == ["textkd bench a b --runs 5    --bogus 1", "textkd nothing here"]
    assert unknown_options(lines[0]) == ["--bogus"]
    assert unknown_options("textkd distill --teacher t --kd.temperature 8 --compare none,soft") == []
    with pytest.raises(ValueError, match="no textkd command"):
        split_command(lines[1])


def test_every_command_has_an_example_in_the_readme():
    shown = {split_command(line)[0] for line in LINES}
    assert not set(COMMANDS) - shown, f"commands without a README example: {sorted(set(COMMANDS) - shown)}"


@pytest.mark.parametrize("line", LINES)
def test_a_readme_example_uses_only_real_options(line):
    assert unknown_options(line) == []


def resolvable(line: str) -> bool:
    """A command with `--print-config` whose recipes are in the repository (not written by an earlier example)."""
    name, words = split_command(line)
    return name in PRINTS_CONFIG and all((ROOT / w).is_file() for w in words if w.endswith(".yaml"))


@pytest.mark.parametrize("line", [line for line in LINES if resolvable(line)])
def test_a_readme_example_resolves_to_a_valid_config(line, monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples name recipes/*.yaml from the repository root
    result = CliRunner().invoke(app, [*shlex.split(line)[1:], "--print-config"])
    assert result.exit_code == 0, result.output


def test_the_readme_python_calls_match_the_api():
    calls = [
        node
        for block in fenced_blocks(README, {"python"})
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value) == "textkd"
    ]
    assert calls, "no textkd calls found in the README's Python blocks"
    for call in calls:
        assert call.func.attr in textkd.__all__, f"textkd.{call.func.attr} is not public"
        signature = inspect.signature(getattr(textkd, call.func.attr))
        signature.bind(*call.args, **{k.arg: k.value for k in call.keywords})  # TypeError on a wrong argument
