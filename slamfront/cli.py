"""Command line: ``slamfront run|demo|eval|...``. Thin: argv -> config -> library calls.

The only module that prints, parses argv, sets up logging or exits the process.
Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from slamfront.errors import SlamfrontError

if TYPE_CHECKING:
    from slamfront.config import Config

Command = Callable[[argparse.Namespace], int]


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="fast",
        metavar="PRESET|FILE",
        help="preset name from configs/ (fast, accurate, classic, ...) or a YAML file",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides (tracker.min_inliers=30)",
    )


def _config_from_args(args: argparse.Namespace) -> Config:
    from slamfront.config import load_config

    return load_config(args.config, args.overrides)


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slamfront", description="Real-time visual SLAM front end."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Command = args.handler
    try:
        return handler(args)
    except SlamfrontError as exc:
        print(f"slamfront: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slamfront: interrupted", file=sys.stderr)
        return 130


# Each entry adds one subcommand: a parser whose defaults carry ``handler=_cmd_<name>``.
_SUBCOMMANDS: list[Callable[[Any], None]] = []


if __name__ == "__main__":
    sys.exit(main())
