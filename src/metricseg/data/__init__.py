"""Segmentation tasks by name: synthetic presets, real offline tasks, user folders, MSD downloads.

Every source produces a :class:`~metricseg.data.task.Task`.

>>> from metricseg.data import get_task
>>> task = get_task("tiny-lesions", num_train=2, num_val=1, num_test=1)
>>> task.num_classes, task.train[0].image.shape
(2, (1, 64, 64))
"""

from __future__ import annotations

from dataclasses import dataclass

from metricseg.data.task import Case, Task

__all__ = ["Case", "Task", "TaskInfo", "get_task", "list_tasks"]


@dataclass(frozen=True)
class TaskInfo:
    """One line of ``metricseg data list``.

    Attributes:
        kind: ``"synthetic"``, ``"real"``, ``"user"`` or ``"download"``.
        available: whether :func:`get_task` can build it on this machine now.
        how_to_get: the command that makes it available (empty when it is).
    """

    name: str
    kind: str
    available: bool
    how_to_get: str
    spatial_dims: int | None
    num_classes: int | None
    class_names: tuple[str, ...]
    size: str
    description: str


def list_tasks() -> list[TaskInfo]:
    """Every task :func:`get_task` knows, with whether it is available here.

    >>> names = [t.name for t in list_tasks()]
    >>> all(n in names for n in ("tiny-lesions", "aal", "brats", "msd:Task04_Hippocampus"))
    True
    """
    return [
        *_synthetic_infos(),
        *_real_infos(),
        _brats_info(),
        *_msd_infos(),
        TaskInfo(
            "folder:PATH",
            "user",
            True,
            "",
            None,
            None,
            (),
            "-",
            "your own data: MSD (dataset.json), nnU-Net raw, or images/ + labels/ folders",
        ),
    ]


def _synthetic_infos() -> list[TaskInfo]:
    from metricseg.data.synthetic import PRESETS

    infos = []
    for spec in PRESETS.values():
        n = spec.num_train + spec.num_val + spec.num_test
        infos.append(
            TaskInfo(
                spec.name,
                "synthetic",
                True,
                "",
                spec.spatial_dims,
                len(spec.classes) + 1,
                ("background", *(c.name for c in spec.classes)),
                f"{n} cases {spec.image_size}{'²' if spec.spatial_dims == 2 else '³'}",
                spec.description,
            )
        )
    return infos


def _real_infos() -> list[TaskInfo]:
    from metricseg.data.real import REAL_TASKS

    infos = []
    for real in REAL_TASKS.values():
        available = real.available()
        infos.append(
            TaskInfo(
                real.name,
                "real",
                available,
                "" if available else real.install,
                2,
                real.num_classes,
                (),
                real.size,
                real.description,
            )
        )
    return infos


def _brats_info() -> TaskInfo:
    from metricseg.data.brats import brats_info

    available, how_to_get, size = brats_info()
    return TaskInfo(
        "brats",
        "real",
        available,
        how_to_get,
        3,
        2,
        ("background", "whole-tumour"),
        size,
        "BraTS whole tumour, 3D subjects at 2 mm (your BraTS / MSD Task01 / nnU-Net folder)",
    )


def _msd_infos() -> list[TaskInfo]:
    from metricseg.data.download import MSD_TASKS, msd_folder

    infos = []
    for name, msd in MSD_TASKS.items():
        available = msd_folder(name) is not None
        infos.append(
            TaskInfo(
                f"msd:{name}",
                "download",
                available,
                "" if available else f"metricseg data download msd:{name}",
                3,
                len(msd.class_names),
                msd.class_names,
                msd.size,
                msd.description,
            )
        )
    return infos


def get_task(name: str, *, seed: int = 0, **options: object) -> Task:
    """Build the task called ``name``.

    Args:
        name: a synthetic preset (``"tiny-lesions"``, ``"large-organ"``, ``"mixed-sizes"``,
            ``"multiclass"``, ``"synthetic-3d"``), a real offline task (``"aal"``,
            ``"aal-small"``, ``"colin-brain"``, ``"mni-tissue"``, ``"dsb-nuclei"``,
            ``"inia19"``), ``"brats"`` (BraTS whole tumour from ``path=`` or
            ``$METRICSEG_BRATS``, see :mod:`metricseg.data.brats`), ``"folder:PATH"`` or
            ``"user"`` with ``path=...`` for a user dataset, or ``"msd:Task04_Hippocampus"`` (and the other MSD tasks) after
            ``metricseg data download``.
        seed: seed of the synthetic generators and of user-dataset splits.
        options: task options (``image_size``, ``num_train``, ``num_val``, ``num_test``,
            ...); unknown options raise ``ValueError``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    from metricseg.data.real import REAL_TASKS, real_task
    from metricseg.data.synthetic import PRESETS, synthetic_task

    if name in PRESETS:
        return synthetic_task(name, seed=seed, **options)
    if name in REAL_TASKS:
        return real_task(name, seed=seed, **options)
    if name == "brats":
        from metricseg.data.brats import brats_task

        return brats_task(seed=seed, **options)
    if name.startswith("folder:") or name == "user":
        from metricseg.data.user import user_task

        if name != "user":
            if "path" in options:
                raise ValueError(f"give the path either in name {name!r} or as path=, not both")
            options["path"] = name[len("folder:") :]
        return user_task(seed=seed, **options)  # type: ignore[arg-type]
    if name.startswith("msd:"):
        from metricseg.data.download import msd_task

        return msd_task(name[len("msd:") :], seed=seed, **options)
    known = [*PRESETS, *REAL_TASKS, "brats", "folder:PATH", "user", "msd:TaskXX_Name"]
    raise ValueError(f"name must be one of {known}, got {name!r}")
