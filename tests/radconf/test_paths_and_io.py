from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from radconf.io.files import atomic_write_image, atomic_write_json
from radconf.io.images import array_to_image
from radconf.paths import require_nnunet_paths, resolve_nnunet_paths


def test_environment_wins_and_defaults_are_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("RADCONF_HOME", str(tmp_path / "home"))
    paths = resolve_nnunet_paths({"nnUNet_raw": "/data/raw"})
    assert paths.raw == Path("/data/raw")
    assert paths.preprocessed == tmp_path / "home" / "nnUNet_preprocessed"
    assert paths.defaulted == ("nnUNet_preprocessed", "nnUNet_results")
    assert not (tmp_path / "home").exists()  # resolving creates nothing


def test_library_never_writes_the_environment(monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    with pytest.raises(RuntimeError, match="not set"):
        require_nnunet_paths()
    resolve_nnunet_paths()
    assert dict(os.environ) == before


def test_cli_layer_fills_defaults_once(monkeypatch, tmp_path, capsys):
    from radconf.cli import environment

    monkeypatch.setenv("RADCONF_HOME", str(tmp_path))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "mine"))
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)
    monkeypatch.setattr(environment, "_announced", False)
    environment.use_default_nnunet_paths()
    environment.use_default_nnunet_paths()
    assert os.environ["nnUNet_raw"] == str(tmp_path / "mine")
    assert os.environ["nnUNet_results"] == str(tmp_path / "nnUNet_results")
    assert capsys.readouterr().out.count("not set") == 1


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a" / "x.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": [1, 2]}
    image = array_to_image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), (2.5, 1.0, 0.5))
    atomic_write_image(tmp_path / "a" / "img.nii.gz", image)
    import SimpleITK as sitk

    back = sitk.ReadImage(str(tmp_path / "a" / "img.nii.gz"))
    assert back.GetSpacing() == (0.5, 1.0, 2.5)
    assert np.array_equal(sitk.GetArrayFromImage(back), np.arange(24).reshape(2, 3, 4))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["img.nii.gz", "x.json"]


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    # outputs are shared with colleagues: the umask decides, not the temp file's owner-only mode
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    previous = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "x.json", {})
        atomic_write_image(tmp_path / "img.nii.gz", array_to_image(np.zeros((2, 2, 2), np.uint8), (1, 1, 1)))
        figure = plt.figure()
        atomic_save_figure(figure, tmp_path / "plot.png")
        plt.close(figure)
    finally:
        os.umask(previous)
    for name in ("x.json", "img.nii.gz", "plot.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
