"""The README cannot drift from the code: every ```python block runs as written, and every
`slamfront ...` command it shows names a real subcommand, parses with the real command line and
loads its configuration (preset or profile plus ``key=value`` overrides)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from slamfront.cli import build_parser
from slamfront.config import load_config

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PYTHON_TIMEOUT_S = 600


def fenced_blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def bash_commands() -> list[list[str]]:
    """argv (without the program) of every line of a ```bash block that runs slamfront."""
    commands = []
    for block in fenced_blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name == "slamfront":
                commands.append(words[1:])
    return commands


def inline_commands() -> list[list[str]]:
    """Words of every `slamfront ...` inline code span (tables and prose)."""
    text = README.read_text(encoding="utf-8")
    spans = re.findall(r"(?<!`)`(slamfront\s[^`]+)`", text)
    return [span.split()[1:] for span in spans]


def python_path() -> str:
    """This checkout first, so a subprocess runs the code under test."""
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([str(REPO), *rest])


def help_listing(*argv: str) -> set[str]:
    """The subcommand names `slamfront ARGV --help` lists (4-space indented, lower case)."""
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(
        [sys.executable, "-m", "slamfront.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return set(re.findall(r"^ {4}([a-z][a-z-]*)(?:\s|$)", done.stdout, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def subcommands() -> set[str]:
    names = help_listing()
    assert {"run", "live", "demo", "eval", "view"} <= names, names
    return names


def parse(argv: list[str]) -> argparse.Namespace:
    """As ``slamfront.cli.main`` parses, without running anything: key=value words after
    options join the overrides; any other leftover word is an error."""
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        assert hasattr(args, "overrides") and all("=" in w and w[0] != "-" for w in extra), extra
        args.overrides = [*args.overrides, *extra]
    return args


def test_bash_commands_are_real(subcommands: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    commands = bash_commands()
    assert len(commands) >= 10, "the README should show how to run each source and rig"
    monkeypatch.chdir(REPO)  # profiles and presets are named relative to a checkout
    bench_targets: set[str] | None = None
    for argv in commands:
        line = "slamfront " + " ".join(argv)
        assert argv and argv[0] in subcommands, f"{line}: not a subcommand of {sorted(subcommands)}"
        if argv[0] == "bench":
            bench_targets = bench_targets or help_listing("bench")
            assert argv[1] in bench_targets, f"{line}: not a bench target"
        try:
            args = parse(argv)
        except SystemExit as exc:
            pytest.fail(f"{line}: the command line does not parse ({exc})")
        if hasattr(args, "config") and hasattr(args, "overrides"):
            load_config(getattr(args, "profile", None) or args.config, args.overrides)


def test_inline_commands_name_real_subcommands(subcommands: set[str]) -> None:
    spans = inline_commands()
    assert spans, "the figures tables give their commands"
    for words in spans:
        if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):  # `slamfront COMMAND --help`
            assert words[0] in subcommands, f"`slamfront {' '.join(words)}`: no such subcommand"


@pytest.mark.slow
def test_python_blocks_run(tmp_path: Path, shared_weights: Path) -> None:
    blocks = fenced_blocks("python")
    assert blocks, "the README shows the Python API"
    env = {
        **os.environ,
        "SLAMFRONT_WEIGHTS": str(shared_weights),
        "PYTHONPATH": python_path(),
    }
    for number, code in enumerate(blocks):
        script = tmp_path / f"readme_block_{number}.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=PYTHON_TIMEOUT_S,
        )
        assert done.returncode == 0, f"README python block {number} failed:\n{done.stderr[-3000:]}"
