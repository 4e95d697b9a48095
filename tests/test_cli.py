import builtins

import pytest

from metricseg.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("metricseg ")
    assert main([]) == 2  # no command: a usage error, the help on stderr
    out = capsys.readouterr().err
    for command in ("bench", "train", "evaluate", "losses", "theory", "data"):
        assert command in out


def test_a_missing_optional_package_names_the_extra_to_install(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name == "rich" or name.startswith("rich."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'rich'" in err and "pip install 'metricseg[io]'" in err


def test_errors_go_to_stderr_with_exit_codes_and_no_traceback(monkeypatch, capsys):
    from metricseg.commands import _common
    from metricseg.commands import losses as losses_cmd

    def usage(args):
        raise _common.UsageError("--x must be 1, got 2")

    def work(args):
        raise _common.WorkError("case a failed")

    def crash(args):
        raise RuntimeError("boom")

    for fn, code, text in ((usage, 2, "--x must be 1"), (work, 1, "case a failed"),
                           (crash, 1, "RuntimeError: boom")):  # fmt: skip
        monkeypatch.setattr(losses_cmd, "run", fn)
        assert main(["losses"]) == code
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("metricseg losses: error: ") and text in captured.err
        assert "Traceback" not in captured.err
    monkeypatch.setattr(losses_cmd, "run", crash)
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "losses"])
