"""The `napari-sam2` command: subcommands live one per module in this package."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Optional, Sequence

# Each module defines `add_parser(subparsers)` which registers its subcommand(s) and sets
# `func=callable(args) -> int` as the parser default.
_SUBCOMMAND_MODULES = ["info", "segment", "evaluate", "models", "batch", "cache"]


def build_parser() -> argparse.ArgumentParser:
    from napari_sam2 import __version__

    parser = argparse.ArgumentParser(
        prog="napari-sam2",
        description="Segment CT/MRI volumes in 3D from a prompt on one slice.",
    )
    parser.add_argument("--version", action="version", version=f"napari-sam2 {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of a failure (may be given anywhere)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        module_name = f"napari_sam2.cli.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad arguments or input, 1 other failure).

    Any failure prints one plain line (what went wrong with which input, what to do), never a
    traceback; `--debug` (anywhere on the line) or NAPARI_SAM2_DEBUG=1 prints the traceback too.
    """
    import os

    from napari_sam2.cli.common import report_failure

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("NAPARI_SAM2_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place that reports
        target = next((str(getattr(args, name)) for name in ("scan", "manifest", "pred", "name")
                       if getattr(args, name, None)), "")
        return report_failure(exc, args.command or "", target, debug)


if __name__ == "__main__":
    sys.exit(main())
