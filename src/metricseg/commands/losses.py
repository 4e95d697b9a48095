"""``metricseg losses``: list the registered losses, their options and defaults."""

from __future__ import annotations

import argparse
import json

from metricseg.commands._common import UsageError

HELP = "list the losses (names for metricseg.losses.get), their options and defaults"
DESCRIPTION = (
    "List the registered losses: the name to pass to metricseg.losses.get(name, **options)\n"
    "or to a training configuration, a one-line description, and every option with its\n"
    "default, read from the signature of the loss's constructor.\n\n"
    "examples:\n"
    "  metricseg losses\n"
    "  metricseg losses lovasz_softmax\n"
    "  metricseg losses --json"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these losses")
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of text (default: text)"
    )


def run(args: argparse.Namespace) -> int:
    from metricseg.losses import available, describe

    names = args.names or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        raise UsageError(
            f"unknown loss name(s): {', '.join(unknown)}; available: {', '.join(available())}"
        )
    infos = [describe(n) for n in names]
    if args.json:
        print(
            json.dumps(
                [
                    {"name": i.name, "description": i.description, "options": i.options}
                    for i in infos
                ],
                indent=2,
                default=repr,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="losses (metricseg.losses.get(NAME, **options))", title_justify="left")
    for column in ("name", "loss", "options and defaults"):
        table.add_column(column)
    for info in infos:
        options = ", ".join(f"{k}={v!r}" for k, v in info.options.items())
        table.add_row(info.name, info.description, options)
    Console(highlight=False).print(table)
    return 0
