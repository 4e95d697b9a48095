"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from metricseg.cli import main
from metricseg.data import get_task
from metricseg.data.download import (
    ChecksumError,
    DownloadError,
    download_file,
    extract_archive,
    fetch_msd,
    msd_folder,
)


class _Server:
    """Serves ``files`` (path -> bytes) with HTTP Range support; records the Range headers.
    ``cut`` (path -> n) announces the full length but closes after n bytes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[str | None] = []
        self.sent = 0
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path)
                server.ranges.append(self.headers.get("Range"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range") and not server.ignore_range:
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                body = body[: server.cut.get(self.path, len(body))]
                server.sent += len(body)
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICSEG_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _msd_tar(task="Task99_Toy", n=4):
    """A small MSD-layout archive, built here: NIfTI volumes written by metricseg.io."""
    import tempfile
    from pathlib import Path

    from metricseg.io import write_image

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer, mode="w") as tar:
        training = []
        for i in range(n):
            label = np.zeros((5, 8, 8), np.uint8)
            label[1:4, 2:6, 2:6] = 1
            image = rng.normal(size=(5, 8, 8)).astype(np.float32) + label
            for folder, array in (("imagesTr", image), ("labelsTr", label)):
                path = write_image(Path(tmp) / f"{folder}_{i}.nii.gz", array)
                _add(tar, f"{task}/{folder}/toy_{i}.nii.gz", path.read_bytes())
            training.append(
                {"image": f"./imagesTr/toy_{i}.nii.gz", "label": f"./labelsTr/toy_{i}.nii.gz"}
            )
        meta = {
            "modality": {"0": "MRI"},
            "labels": {"0": "background", "1": "blob"},
            "training": training,
        }
        _add(tar, f"{task}/dataset.json", json.dumps(meta).encode())
    return buffer.getvalue()


def _md5(data):
    return hashlib.md5(data).hexdigest()


def test_fetch_success_then_usable_as_a_task(server, cache):
    data = _msd_tar()
    server.files["/Task99_Toy.tar"] = data
    folder = fetch_msd("Task99_Toy", base_url=server.url, md5=_md5(data))
    assert folder == cache / "msd" / "Task99_Toy" and msd_folder("Task99_Toy") == folder
    assert (folder / "dataset.json").is_file() and len(list((folder / "imagesTr").iterdir())) == 4
    assert sorted(p.name for p in (cache / "msd").iterdir()) == [
        "Task99_Toy"
    ]  # no archive, no temp dir
    task = get_task("msd:Task99_Toy", num_train=2, num_val=1, num_test=1)
    assert task.name == "msd:Task99_Toy" and task.class_names == ["background", "blob"]
    assert task.train[0].image.shape == (1, 5, 8, 8)
    requests = len(server.ranges)
    assert fetch_msd("Task99_Toy", base_url=server.url, md5=_md5(data)) == folder
    assert len(server.ranges) == requests  # cached: no second download


def test_wrong_checksum_removes_the_download(server, cache):
    server.files["/Task99_Toy.tar"] = _msd_tar()
    with pytest.raises(
        ChecksumError, match=r"Task99_Toy.tar: MD5 of the download is [0-9a-f]{32}, expected 0{32}"
    ):
        fetch_msd("Task99_Toy", base_url=server.url, md5="0" * 32)
    assert not (cache / "msd").exists() or not any((cache / "msd").iterdir())
    assert msd_folder("Task99_Toy") is None


def test_truncated_archive_leaves_no_half_extracted_dataset(server, cache):
    data = _msd_tar()
    truncated = data[: len(data) // 2]
    server.files["/Task99_Toy.tar"] = truncated
    # the checksum matches the truncated bytes, so only extraction can notice
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        fetch_msd("Task99_Toy", base_url=server.url, md5=_md5(truncated))
    leftovers = [p.name for p in (cache / "msd").iterdir()]
    assert leftovers == ["Task99_Toy.tar"]  # the verified archive stays; no folder, no temp dir


def test_dropped_connection_then_resume_with_range(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["/big.bin"] = data
    server.cut["/big.bin"] = 300_000
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download_file(f"{server.url}/big.bin", dest, _md5(data))
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == 300_000 and not dest.exists()
    del server.cut["/big.bin"]
    server.sent = 0
    download_file(f"{server.url}/big.bin", dest, _md5(data))
    assert dest.read_bytes() == data and not part.exists()
    assert server.ranges[-1] == "bytes=300000-" and server.sent == len(data) - 300_000


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = b"abcdefgh" * 1000
    server.files["/f.bin"] = data
    server.ignore_range = True  # answers 200 with the whole file
    (tmp_path / "f.bin.part").write_bytes(b"abcd")
    download_file(f"{server.url}/f.bin", tmp_path / "f.bin", _md5(data))
    assert server.ranges[-1] == "bytes=4-" and (tmp_path / "f.bin").read_bytes() == data


def test_stale_part_of_another_file_fails_checksum_then_recovers(server, tmp_path):
    data = b"abcdefgh" * 1000
    server.files["/g.bin"] = data
    (tmp_path / "g.bin.part").write_bytes(b"XXXX")  # resumed at byte 4: wrong first bytes
    with pytest.raises(ChecksumError):
        download_file(f"{server.url}/g.bin", tmp_path / "g.bin", _md5(data))
    assert not (tmp_path / "g.bin.part").exists() and not (tmp_path / "g.bin").exists()
    download_file(f"{server.url}/g.bin", tmp_path / "g.bin", _md5(data))  # next try starts afresh
    assert (tmp_path / "g.bin").read_bytes() == data


def test_http_error_and_unsafe_archive(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server.url}/missing.tar", tmp_path / "m.tar", None)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        _add(tar, "../escape.txt", b"x")
    with pytest.raises(DownloadError, match="unsafe archive member"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cli_download_and_missing_task_message(server, cache, capsys):
    with pytest.raises(FileNotFoundError, match="metricseg data download msd:Task04_Hippocampus"):
        get_task("msd:Task04_Hippocampus")
    data = _msd_tar("Task04_Hippocampus")
    server.files["/Task04_Hippocampus.tar"] = data
    # the real MD5 is MONAI's; this archive differs, so the CLI must refuse it
    assert main(["data", "download", "msd:Task04_Hippocampus", "--base-url", server.url]) == 1
    assert "MD5" in capsys.readouterr().err
    assert msd_folder("Task04_Hippocampus") is None


# ------------------------------------------------------------------ task names stay in the cache


@pytest.mark.parametrize(
    "name", ["../../x", "../x", "ABSOLUTE", "Task01_Brain/../../x", "Task01_..", "x", ""]
)
def test_fetch_msd_refuses_a_name_that_is_not_a_task_before_touching_the_disk(
    name, server, cache, tmp_path
):
    # cache/msd/../../x is tmp_path/x: today's fetch_msd extracts over it with shutil.rmtree
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    if name == "ABSOLUTE":  # an absolute name replaces the cache path when joined to it
        name = str(victim)
    data = _msd_tar("x")
    for path in ("/../../x.tar", "/x.tar", "/../x.tar"):
        server.files[path] = data
    with pytest.raises(ValueError, match="must be an MSD task name TaskNN_Name"):
        fetch_msd(name, base_url=server.url, md5=_md5(data))
    assert (victim / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert server.ranges == [] and not (tmp_path / "x.tar").exists()  # nothing fetched
    with pytest.raises(ValueError, match="must be an MSD task name"):
        msd_folder(name)


def test_fetch_msd_refuses_a_task_folder_that_links_outside_the_cache(server, cache, tmp_path):
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (cache / "msd").mkdir(parents=True)
    (cache / "msd" / "Task98_Link").symlink_to(victim, target_is_directory=True)
    data = _msd_tar("Task98_Link")
    server.files["/Task98_Link.tar"] = data
    with pytest.raises(ValueError, match="outside the cache folder"):
        fetch_msd("Task98_Link", base_url=server.url, md5=_md5(data))
    assert [p.name for p in victim.iterdir()] == ["keep.txt"] and server.ranges == []


def test_md5_must_be_hexadecimal(server, cache):
    with pytest.raises(ValueError, match="md5 must be 32 hexadecimal digits"):
        fetch_msd("Task99_Toy", base_url=server.url, md5="../x")
    assert server.ranges == []


# ------------------------------------------------------------------ Task01_BrainTumour


def test_msd_table_agrees_with_monai():
    """URL and MD5 of every MSD task are MONAI's (an independent copy of the same table)."""
    datasets = pytest.importorskip("monai.apps.datasets")
    from metricseg.data.download import MSD_BASE_URL, MSD_TASKS

    assert MSD_TASKS["Task01_BrainTumour"].md5 == "240a19d752f0d9e9101544901065d872"
    for task, info in MSD_TASKS.items():
        assert datasets.DecathlonDataset.md5[task] == info.md5
        assert datasets.DecathlonDataset.resource[task] == f"{MSD_BASE_URL}/{task}.tar"


def _brats_msd_tar(write_msd, tmp_path, n=3):
    folder = write_msd(tmp_path / "src" / "Task01_BrainTumour", n=n)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname="Task01_BrainTumour")
    return buffer.getvalue()


def test_task01_download_is_read_by_the_brats_task(
    server, cache, tmp_path, brats_data, monkeypatch, capsys
):
    from metricseg.data.brats import BRATS_ENV, clear_memory_cache

    monkeypatch.delenv(BRATS_ENV, raising=False)
    data = _brats_msd_tar(brats_data.write_msd, tmp_path)
    server.files["/Task01_BrainTumour.tar"] = data
    # the real MD5 is MONAI's; this small archive differs, so the CLI refuses it
    assert main(["data", "download", "msd:Task01_BrainTumour", "--base-url", server.url]) == 1
    assert "MD5" in capsys.readouterr().err and msd_folder("Task01_BrainTumour") is None
    folder = fetch_msd("Task01_BrainTumour", base_url=server.url, md5=_md5(data))
    assert folder == cache / "msd" / "Task01_BrainTumour"
    clear_memory_cache()
    for task in (get_task("brats", path=folder), get_task("brats")):  # found without a path
        assert task.source == str(folder) and task.meta["layout"] == "msd"
        assert sorted(c.subject for c in task.cases) == ["BRATS_000", "BRATS_001", "BRATS_002"]
        assert all(c.image.shape == (2, *brats_data.OUT_SHAPE) for c in task.cases)
        assert all(set(np.unique(c.label)) == {0, 1} for c in task.cases)  # labels 1-3 -> 1
    # the generic MSD reader keeps the four channels and four classes
    whole = get_task("msd:Task01_BrainTumour", num_train=1, num_val=1, num_test=1)
    assert whole.in_channels == 4 and whole.num_classes == 4
    assert main(["data", "list"]) == 0
    listed = [r for r in capsys.readouterr().out.splitlines() if "Task01_BrainTumour" in r]
    assert listed and " yes " in listed[0]
