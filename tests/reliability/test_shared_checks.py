"""The shared checks every command relies on: whole NIfTI files, finite voxels, output locations, argument types,
one-line OS errors and warnings."""
from __future__ import annotations

import argparse
import errno
import gzip
import os
import sys
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import arguments
from radconf.cli.errors import run_cli
from radconf.io.images import check_image_file, read_label_image
from radconf.io.integrity import check_complete, decompressed_size
from radconf.io.locations import check_output_location, output_conflict

SHAPE = (4, 5, 6)  # z, y, x: 120 voxels


def _write(path, dtype=np.int16, array=None):
    array = np.arange(np.prod(SHAPE), dtype=dtype).reshape(SHAPE) if array is None else array
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def test_whole_nifti_files_pass_and_their_size_is_header_plus_voxels(tmp_path):
    path = _write(tmp_path / "ct.nii.gz")
    check_complete(path)
    check_complete(_write(tmp_path / "ct.nii"))
    assert decompressed_size(path) == 352 + 120 * 2  # NIfTI-1 single file: 348-byte header + 4 extension bytes


@pytest.mark.parametrize("cut", ["recompressed", "gzip_cut", "plain"])
def test_truncated_nifti_files_are_named(tmp_path, cut):
    whole = _write(tmp_path / "whole.nii.gz")
    data = gzip.decompress(whole.read_bytes())
    if cut == "recompressed":  # a partial copy of the decompressed file, compressed again: a valid gzip stream
        path = tmp_path / "ct.nii.gz"
        path.write_bytes(gzip.compress(data[: len(data) - 100]))
    elif cut == "gzip_cut":  # a partial copy of the .nii.gz itself
        path = tmp_path / "ct.nii.gz"
        path.write_bytes(whole.read_bytes()[:-30])
    else:
        path = tmp_path / "ct.nii"
        path.write_bytes(data[:-100])
    # what SimpleITK makes of it without the check: the missing voxels read as zeros, no error
    if cut != "gzip_cut":
        assert (sitk.GetArrayFromImage(sitk.ReadImage(str(path))) == 0).sum() > 1
    with pytest.raises(ValueError, match=rf"{path.name} is (truncated|corrupt).*copy it again"):
        check_complete(path)
    with pytest.raises(ValueError, match=path.name):
        read_label_image(path)


def test_several_gzip_members_are_one_whole_file(tmp_path):
    data = gzip.decompress(_write(tmp_path / "whole.nii.gz").read_bytes())
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(data[:200]) + gzip.compress(data[200:]))
    check_complete(path)  # the trailer holds only the last member's size: counted by decompressing
    assert decompressed_size(path) == len(data)


def test_nan_voxels_are_refused_although_simpleitk_reads_them_as_zero(tmp_path):
    array = np.ones(SHAPE, np.float32)
    array[0, 0, :2] = [np.nan, np.inf]
    path = _write(tmp_path / "ct.nii.gz", array=array)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0, 0, 0])  # NaN became a number
    with pytest.raises(ValueError, match=r"ct.nii.gz: 2 of 120 voxels .* NaN or infinite"):
        check_image_file(path)
    _write(tmp_path / "mha.mha", array=array)
    with pytest.raises(ValueError, match="2 of 120"):
        check_image_file(tmp_path / "mha.mha")
    assert check_image_file(_write(tmp_path / "int.nii.gz")).size == (6, 5, 4)


def test_output_locations(tmp_path):
    source = tmp_path / "images"
    (source / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(source)
    assert output_conflict(source, source) == "is"
    assert output_conflict(link, source) == "is"  # resolved
    assert output_conflict(source / "sub", source) == "lies inside"
    assert output_conflict(tmp_path, source) == "contains"
    assert output_conflict(tmp_path / "images_predictions", source) is None
    with pytest.raises(ValueError, match=r"-o .*link is the input folder -i .*never writes into.*images_output"):
        check_output_location(link, [("the input folder -i", source)])
    check_output_location(tmp_path / "out", [("-i", source), ("--anatomy", None)])
    assert sorted(os.listdir(tmp_path)) == ["images", "link"]


@pytest.mark.parametrize(("kind", "text", "message"), [
    (arguments.positive_int, "0", "at least 1"), (arguments.positive_int, "1.5", "not an integer"),
    (arguments.non_negative_int, "-1", "0 or more"), (arguments.positive_float, "0", "greater than 0"),
    (arguments.finite_float, "nan", "not a finite"), (arguments.finite_float, "inf", "not a finite"),
    (arguments.fraction, "0", "at most 1"), (arguments.fraction, "1.01", "at most 1"),
    (arguments.probability, "-0.1", "between 0 and 1"), (arguments.non_negative_float, "-2", "0 or more"),
])
def test_argument_types_refuse_with_a_reason(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(text)


def test_argument_types_accept_the_edges():
    assert arguments.fraction("1") == 1.0 and arguments.probability("0") == 0.0
    assert arguments.positive_int("1") == 1 and arguments.non_negative_int("0") == 0


def test_help_shows_defaults_and_abbreviations_are_refused(capsys):
    parser = arguments.make_parser("radconf_x", "Example.")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class")
    parser.add_argument("--epochs_total", type=arguments.positive_int, default=None, help="epochs")
    parser.print_help()
    assert "trainer class (default: nnUNetTrainer)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--epochs", "3"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("code", "fix"), [(errno.ENOENT, "does not exist"), (errno.EEXIST, "remove it"),
                                           (errno.EACCES, "permissions"), (errno.ENOSPC, "free disk space")])
def test_os_errors_about_paths_are_one_line(capsys, code, fix):
    def body():
        raise OSError(code, os.strerror(code), "/data/case_001.nii.gz")
    assert run_cli(body) == 2
    err = capsys.readouterr().err
    assert err.startswith("radconf: error: ") and "/data/case_001.nii.gz" in err and fix in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_other_os_errors_keep_their_traceback(capsys):
    def body():
        raise OSError(errno.EIO, "Input/output error")
    assert run_cli(body) == 1
    assert "Traceback" in capsys.readouterr().err


def _default_showwarning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_warnings_are_one_line_without_source(capsys):
    def body():
        warnings.warn("spacing differs between cases", UserWarning, stacklevel=1)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _default_showwarning  # pytest records warnings; show them as Python does
        assert run_cli(body) == 0
    assert capsys.readouterr().err == "radconf: warning: spacing differs between cases\n"
    assert warnings.formatwarning.__name__ == "formatwarning"  # restored
