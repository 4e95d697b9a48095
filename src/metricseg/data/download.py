"""Downloads of Medical Segmentation Decathlon tasks: checksummed, resumable, extracted atomically.

The archives are the MSD tarballs that MONAI mirrors on the AWS open-data bucket
(``https://msd-for-monai.s3-us-west-2.amazonaws.com/TaskXX_Name.tar``); the MD5
sums are the ones in MONAI's ``monai/apps/datasets.py`` (``DecathlonDataset.md5``,
MONAI 1.x). Files go to the cache directory ``$METRICSEG_DATA`` (default
``~/.cache/metricseg``):

* the download is written to ``NAME.tar.part`` and resumed with an HTTP
  ``Range`` request when that file exists; it becomes ``NAME.tar`` only when its
  MD5 matches;
* the archive is extracted into a temporary folder next to the target, which is
  renamed to ``msd/TaskXX_Name`` only when extraction succeeded, so a truncated
  or corrupt archive never leaves a half-extracted dataset behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from metricseg.data.task import Task

__all__ = [
    "MSD_TASKS",
    "ChecksumError",
    "DownloadError",
    "MsdTask",
    "cache_dir",
    "check_msd_name",
    "download_file",
    "extract_archive",
    "fetch_msd",
    "msd_folder",
    "msd_task",
]

MSD_BASE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com"


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message names the file or URL."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected MD5 sum."""


@dataclass(frozen=True)
class MsdTask:
    """One MSD task: its archive checksum and what it holds."""

    md5: str
    class_names: tuple[str, ...]
    size: str
    description: str


#: MD5 sums from MONAI's DecathlonDataset (monai/apps/datasets.py)
MSD_TASKS: dict[str, MsdTask] = {
    "Task01_BrainTumour": MsdTask(
        "240a19d752f0d9e9101544901065d872",
        ("background", "edema", "non-enhancing-tumour", "enhancing-tumour"),
        "7 GB, 484 MR (4 channels)",
        "MSD brain tumour (BraTS 2016/17), FLAIR/T1w/T1gd/T2w; whole tumour: task brats",
    ),
    "Task02_Heart": MsdTask(
        "06ee59366e1e5124267b774dbd654057",
        ("background", "left-atrium"),
        "0.4 GB, 20 MR",
        "MSD left atrium, mono-modal MRI",
    ),
    "Task04_Hippocampus": MsdTask(
        "9d24dba78a72977dbd1d2e110310f31b",
        ("background", "anterior", "posterior"),
        "27 MB, 260 MR",
        "MSD hippocampus head and body, MRI",
    ),
    "Task05_Prostate": MsdTask(
        "35138f08b1efaef89d7424d2bcc928db",
        ("background", "peripheral", "transition"),
        "0.2 GB, 32 MR (2 channels)",
        "MSD prostate zones, T2 + ADC MRI",
    ),
    "Task09_Spleen": MsdTask(
        "410d4a301da4e5b2f6f86ec3ddba524e",
        ("background", "spleen"),
        "1.5 GB, 41 CT",
        "MSD spleen, CT",
    ),
}


#: MSD task names: ``TaskNN_Name``; letters, digits and ``_`` only, so never a path separator
_MSD_NAME = re.compile(r"Task[0-9]{2,3}_[A-Za-z0-9][A-Za-z0-9_]{0,63}")


def check_msd_name(task: object) -> str:
    """``task`` if it is an MSD task name (``TaskNN_Name``), else ``ValueError``.

    Names become folder and file names in the cache, so they are checked before any path is
    built from them.

    >>> check_msd_name("Task04_Hippocampus")
    'Task04_Hippocampus'
    >>> check_msd_name("../../x")
    Traceback (most recent call last):
    ...
    ValueError: task must be an MSD task name TaskNN_Name (letters, digits and '_' after the number), e.g. Task04_Hippocampus; got '../../x'
    """
    if not isinstance(task, str) or not _MSD_NAME.fullmatch(task):
        raise ValueError(
            "task must be an MSD task name TaskNN_Name (letters, digits and '_' after the "
            f"number), e.g. Task04_Hippocampus; got {task!r}"
        )
    return task


def _inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root`` (symbolic links followed), else ``ValueError``."""
    base, resolved = root.resolve(), path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValueError(
            f"{path} resolves to {resolved}, outside the cache folder {base}; refusing to touch it"
        )
    return path


def _msd_root() -> Path:
    return cache_dir() / "msd"


def cache_dir() -> Path:
    """``$METRICSEG_DATA``, or ``~/.cache/metricseg``."""
    return Path(os.environ.get("METRICSEG_DATA", "~/.cache/metricseg")).expanduser()


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    md5: str | None,
    *,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest + '.part'``, and check its MD5.

    Raises:
        ChecksumError: the MD5 differs (the partial file is removed, so the next try starts afresh).
        DownloadError: the server answered with an error or the connection failed.
    """
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and (md5 is None or _md5(target) == md5):
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            total = response.headers.get("Content-Length")
            expected_total = (int(total) + (have if resumed else 0)) if total else None
            with open(part, "ab" if resumed else "wb") as out:
                received = have if resumed else 0
                while block := response.read(chunk_size):
                    out.write(block)
                    received += len(block)
                    if progress:
                        print(f"\r{target.name}: {received / 1e6:.1f} MB", end="", flush=True)
            if progress:
                print()
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: the part file is already complete
            pass
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"{url}: download failed ({exc}); run again to resume from {part}"
        ) from None
    else:
        if expected_total is not None and part.stat().st_size < expected_total:
            raise DownloadError(
                f"{url}: connection closed after {part.stat().st_size} of {expected_total} bytes; "
                f"run again to resume from {part}"
            )
    if md5 is not None:
        got = _md5(part)
        if got != md5:
            part.unlink()
            raise ChecksumError(
                f"{url}: MD5 of the download is {got}, expected {md5}; the file was removed"
            )
    os.replace(part, target)
    return target


def _safe_members(archive: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for m in members:
        name = Path(m.name)
        if name.is_absolute() or ".." in name.parts or m.issym() or m.islnk() or m.isdev():
            raise DownloadError(f"{source}: refusing unsafe archive member {m.name!r}")
    return members


def extract_archive(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Extract a tar archive whose single top folder becomes ``target``, atomically.

    Raises:
        DownloadError: the archive is truncated or corrupt; nothing is left at ``target``.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = _safe_members(tar, archive)
                # the "data" filter (Python >= 3.11.4) re-checks paths and drops special files
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **safe)  # type: ignore[arg-type]
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DownloadError(
                f"{archive}: cannot extract ({exc}); the archive is truncated or corrupt"
            ) from None
        entries = list(staging.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def msd_folder(task: str) -> Path | None:
    """The extracted folder of an MSD task in the cache, or None.

    Raises:
        ValueError: ``task`` is not a ``TaskNN_Name``, or its folder resolves outside the cache.
    """
    root = _msd_root()
    folder = _inside(root, root / check_msd_name(task))
    return folder if (folder / "dataset.json").is_file() else None


def fetch_msd(
    task: str,
    *,
    base_url: str | None = None,
    md5: str | None = None,
    progress: bool = False,
    keep_archive: bool = False,
) -> Path:
    """Download and extract an MSD task into ``cache_dir() / "msd" / task``; return the folder.

    ``base_url`` (or ``$METRICSEG_MSD_URL``) replaces the AWS bucket (a mirror, or a
    local test server); ``md5`` replaces the known sum.

    Raises:
        ValueError: ``task`` is not a ``TaskNN_Name`` (checked before anything is read,
            downloaded or removed), or a target resolves outside the cache folder.
    """
    check_msd_name(task)
    if task not in MSD_TASKS and md5 is None:
        raise ValueError(f"task must be one of {sorted(MSD_TASKS)} (or give md5=), got {task!r}")
    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", str(md5)):
        raise ValueError(f"md5 must be 32 hexadecimal digits, got {md5!r}")
    root = _msd_root()
    # every path below is built from the checked name and must stay inside the cache
    target = _inside(root, root / task)
    archive_path = _inside(root, root / f"{task}.tar")
    existing = msd_folder(task)
    if existing is not None:
        return existing
    base = base_url or os.environ.get("METRICSEG_MSD_URL", MSD_BASE_URL)
    checksum = md5 if md5 is not None else MSD_TASKS[task].md5
    archive = download_file(
        f"{base.rstrip('/')}/{task}.tar", archive_path, checksum, progress=progress
    )
    folder = extract_archive(archive, target)
    if not (folder / "dataset.json").is_file():
        shutil.rmtree(folder)
        raise DownloadError(f"{archive}: extracted, but it holds no dataset.json; not an MSD task")
    if not keep_archive:
        archive.unlink()
    return folder


def msd_task(task: str, *, seed: int = 0, download: bool = False, **options: object) -> Task:
    """A downloaded MSD task as a :class:`Task` (options as in :func:`~metricseg.data.user.user_task`)."""
    from metricseg.data.user import user_task

    folder = msd_folder(check_msd_name(task))
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"MSD task {task!r} is not in {cache_dir() / 'msd'}; get it with "
                f"`metricseg data download msd:{task}` (or set METRICSEG_DATA to where it is)"
            )
        folder = fetch_msd(task, progress=True)
    return user_task(path=folder, seed=seed, name=f"msd:{task}", **options)  # type: ignore[arg-type]
