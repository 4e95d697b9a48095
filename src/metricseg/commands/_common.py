"""What every ``metricseg`` sub-command shares: the error rule, list and option parsing.

The CLI rule (enforced by :func:`metricseg.cli.main`):

* errors go to **stderr** as ``metricseg <command>: error: <message>``;
* exit code **2** for a usage error (:class:`UsageError`: a bad argument, an unknown
  name, a file that cannot be an input), **1** for work that failed
  (:class:`WorkError`, or any other exception), **0** when everything was done;
* no traceback unless ``metricseg --debug <command> ...``.

Commands raise these exceptions instead of printing and returning codes, so the rule
lives in one place.
"""

from __future__ import annotations

import argparse
import ast
import os
from typing import Any

__all__ = [
    "UsageError",
    "WorkError",
    "csv_list",
    "int_csv_list",
    "parse_options",
    "usable_cores",
]


class UsageError(Exception):
    """The command was called wrongly (exit code 2). The message says what and the fix."""


class WorkError(Exception):
    """The command was called rightly but its work failed (exit code 1)."""


def csv_list(text: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``; an argparse ``type=`` that refuses an empty list.

    Example:
        >>> csv_list("soft_dice, ce")
        ['soft_dice', 'ce']
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def int_csv_list(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; an argparse ``type=`` with a clear message.

    Example:
        >>> int_csv_list("8,16,32")
        [8, 16, 32]
    """
    try:
        return [int(t) for t in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 8,16,32, got {text!r}"
        ) from None


def parse_options(items: list[str], flag: str = "-o/--option") -> dict[str, Any]:
    """``["image_size=96", "name=x"]`` → ``{"image_size": 96, "name": "x"}``.

    A value is read as a Python literal where it parses (numbers, lists, True/False,
    None), else kept as a string.

    Example:
        >>> parse_options(["image_size=96", "path=/data/x", "channels=[8, 16]"])
        {'image_size': 96, 'path': '/data/x', 'channels': [8, 16]}
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} must be KEY=VALUE, got {item!r}")
        if key in options:
            raise UsageError(f"{flag} {key} is given twice ({options[key]!r} and {value!r})")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
