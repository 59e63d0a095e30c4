"""The ``recsec`` command: one subcommand per stage of the study.

Each subcommand lives in its own module here with a ``register(subparsers)``
function that adds its parser and sets ``handler`` (a function taking the parsed
arguments and returning an exit code). Handlers unpack the arguments into the
library's explicit parameters; no argparse namespace travels further.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under recsec_lib.cli, in the order their commands appear in --help.
COMMAND_MODULES = (
    "data", "analyze", "train", "evaluate", "visualize", "interactive", "compare",
    "attack", "defend", "seat", "study",
)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsec",
        description="Model-extraction attacks and defenses on sequential recommenders (MovieLens).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"recsec_lib.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"recsec_lib.cli.{name}":
                continue  # stage not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"recsec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recsec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
