import builtins

import pytest

from metricseg.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("metricseg ")
    assert main([]) == 2
    out = capsys.readouterr().out
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
