"""The ``metricseg`` command: one sub-command per module in ``metricseg.commands``.

Each sub-command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``, and keeps its heavy imports inside ``run`` so that
``metricseg --help`` stays fast. Errors follow one rule for every command
(:mod:`metricseg.commands._common`): a message on stderr, exit code 2 for a usage
error and 1 for failed work, a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from metricseg import __version__

#: sub-command name -> module, in the order ``--help`` lists them
COMMANDS: dict[str, str] = {
    "bench": "metricseg.commands.bench",
    "train": "metricseg.commands.train",
    "evaluate": "metricseg.commands.evaluate",
    "compare": "metricseg.commands.compare",
    "losses": "metricseg.commands.losses",
    "theory": "metricseg.commands.theory",
    "data": "metricseg.commands.data",
    "nnunet": "metricseg.commands.nnunet",
}


#: optional top-level package -> the extra that installs it
OPTIONAL_PACKAGES: dict[str, str] = {
    "rich": "io",
    "SimpleITK": "io",
    "nibabel": "io",
    "matplotlib": "report",
    "scipy": "report",
    "nilearn": "data",
    "tifffile": "data",
    "yaml": "data",
    "monai": "train",
    "tqdm": "train",
    "ray": "ray",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metricseg",
        description=(
            "Losses, metrics, theory and loss-comparison benchmarks for segmentation "
            "judged by the Dice score and the Jaccard index."
        ),
    )
    parser.add_argument("--version", action="version", version=f"metricseg {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (default: off)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # sub-command not built in this checkout
                continue
            raise
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _error(command: str | None, message: str) -> None:
    prefix = f"metricseg {command}" if command else "metricseg"
    print(f"{prefix}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from metricseg.commands._common import UsageError, WorkError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        # output piped into e.g. `head` that exited: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, ModuleNotFoundError):
            top = (exc.name or "").split(".")[0]
            if top in OPTIONAL_PACKAGES:
                _error(
                    args.command,
                    f"needs the optional package {top!r}; install it with pip install "
                    f"'metricseg[{OPTIONAL_PACKAGES[top]}]' (or 'metricseg[train]' for all but Ray)",
                )
                return 2
        if isinstance(exc, UsageError):
            _error(args.command, str(exc))
            return 2
        if isinstance(exc, WorkError):
            _error(args.command, str(exc))
            return 1
        _error(args.command, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
