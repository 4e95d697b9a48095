import os
import stat

import pytest

from metricseg.atomic import atomic_path, atomic_write_json, atomic_write_text


def test_crash_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"dice": 0.5})

    def crash(f):
        f.write(b'{"dice": 0.9')  # half a file, then the writer dies
        raise RuntimeError("killed")

    from metricseg.atomic import atomic_write

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, crash)
    assert target.read_text() == '{\n "dice": 0.5\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_written_files_get_the_mode_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_atomic_path_keeps_the_suffix_for_writers_that_pick_the_format_from_it(tmp_path):
    with atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png"
