"""Entry point: one sub-command per module, listed explicitly below."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fcnseg import __version__
from fcnseg.cli import (
    bench,
    calibrate,
    check_data,
    convert,
    demo,
    evaluate,
    export,
    info,
    options,
    predict,
    recipes,
    serve,
    train,
)

# Each module defines NAME, HELP, add_arguments(parser) and run(args) -> exit code. They import
# what they use at their top; only optional extras (the serve extra's uvicorn and FastAPI, the
# caffe extra's protobuf) are imported when their command runs, so a missing extra is reported
# by that command alone.
COMMANDS = [demo, train, recipes, info, evaluate, calibrate, serve, check_data, predict, export,
            bench, convert]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcnseg",
        description="Fully Convolutional Networks for semantic segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"fcnseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           formatter_class=options.HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
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
