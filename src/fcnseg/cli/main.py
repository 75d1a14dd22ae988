"""Entry point: one sub-command per module, listed explicitly below."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from fcnseg import __version__
from fcnseg.cli import (
    bench,
    calibrate,
    check_data,
    convert,
    demo,
    evaluate,
    export,
    import_data,
    info,
    options,
    predict,
    quantize,
    recipes,
    serve,
    train,
)

# Each module defines NAME, HELP, add_arguments(parser) and run(args) -> exit code. They import
# what they use at their top; only optional extras (the serve extra's uvicorn and FastAPI, the
# caffe extra's protobuf) are imported when their command runs, so a missing extra is reported
# by that command alone.
COMMANDS = [demo, train, recipes, info, evaluate, calibrate, serve, check_data, predict, export,
            quantize, bench, convert, import_data]


def build_parser() -> argparse.ArgumentParser:
    """The fcnseg parser. Options are written in full (allow_abbrev=False): argparse would
    otherwise take ``--data`` for ``--dataset`` where a command has no ``--data``."""
    parser = argparse.ArgumentParser(
        prog="fcnseg",
        description="Fully Convolutional Networks for semantic segmentation.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"fcnseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           formatter_class=options.HelpFormatter, allow_abbrev=False)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def refuse_misspelt_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Exit with argparse's usage error when an option of the command in ``argv`` is misspelt,
    naming the option it most likely meant (``--chekpoint``: did you mean ``--checkpoint``?).
    Before parsing, so that the hint comes first, not "the following arguments are required"."""
    commands = next(a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)).choices
    command = next((a for a in argv if a in commands), None)
    if command is None:
        return
    sub = commands[command]
    known = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
    for token in argv[list(argv).index(command) + 1:]:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if not name.startswith("--") or name in known:
            continue  # a value, or an option
        longer = [k for k in known if k.startswith(name)]
        close = longer[:1] if len(longer) == 1 else difflib.get_close_matches(name, known, n=1)
        if close:
            note = " (options are written in full)" if longer else ""
            sub.error(f"unrecognized option {name}; did you mean {close[0]}?{note}")


def warning_printer(command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints a warning as one ``fcnseg COMMAND: warning: ...``
    line, as the commands print their own warnings, not Python's file:line and source line."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"fcnseg {command}: warning: {text}", file=file or sys.stderr)
    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    refuse_misspelt_options(parser, argv)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = warning_printer(args.command)
        return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; bad input becomes one ``fcnseg COMMAND: error: ...`` line."""
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`fcnseg info --json | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        # Errors from bad input carry a message naming the file or field; show it plainly.
        print(f"fcnseg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
