"""Doctest collection of the integrations: modules that import an absent optional extra are left out.

``trainers.py`` (and the ``ext_trainers`` module that re-exports it) subclass nnU-Net's
trainer, so they import ``nnunetv2``. Without it they are not collected — except when
``CI=true``, where the extra is installed and a missing ``nnunetv2`` is an error.
"""

from __future__ import annotations

import importlib.util
import os

collect_ignore_glob: list[str] = []
if importlib.util.find_spec("nnunetv2") is None and os.environ.get("CI") != "true":
    collect_ignore_glob += ["nnunet/trainers.py", "nnunet/ext_trainers/*.py"]
