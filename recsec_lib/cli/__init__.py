"""The ``recsec`` command: one subcommand per stage of the study.

Each subcommand lives in its own module here with a ``register(subparsers)``
function that adds its parser and sets ``handler`` (a function taking the parsed
arguments and returning an exit code). Handlers unpack the arguments into the
library's explicit parameters; no argparse namespace travels further.

Layer 7, the top: one module per ``recsec`` command; may import every package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from recsec_lib.common.allocator import keep_freed_memory
from recsec_lib.study.stages.context import check_device

# Modules under recsec_lib.cli, in the order their commands appear in --help.
COMMAND_MODULES = (
    "data", "analyze", "train", "evaluate", "visualize", "interactive", "compare",
    "attack", "defend", "seat", "watermark", "study",
)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def folder_option(value, option: str) -> Path:
    """The folder given to ``option`` (e.g. "--output-dir") as a Path; UserError when it names a file.

    Checked before any work, so that a typo does not end a long run in
    ``NotADirectoryError`` or ``FileExistsError`` when the first result is written.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder")
    return path


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
    keep_freed_memory()  # this process and its workers reuse freed tensor memory (common.allocator: why)
    try:
        if getattr(args, "device", None) is not None:  # every command with --device: before any work
            check_device(args.device)
        if getattr(args, "lr", None) is not None:  # every command with --lr trains with Adam
            from recsec_lib.recommend.training import check_adam_lr

            check_adam_lr(args.lr, "--lr")
        return int(args.handler(args) or 0)
    # DataUnavailableError (offline without a mirror) is a FileNotFoundError: one line naming --mirror.
    except (UserError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"recsec {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recsec {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The first line of an error message (a command's error is one line, whatever raised it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
