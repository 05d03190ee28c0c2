"""Benchmark: DICOM-RT import and export, radconf vs dcmrtstruct2nii 5 vs rt-utils 1.2.7 (same files, one run).

A synthetic case: a CT of ``--size`` x ``--size`` x ``--slices`` voxels (default 512 x 512 x 150, pixels 0.977 mm and
slices 2.5 mm at that size, scaled to keep the field of view otherwise; off-grid origin), written with radconf's CT
writer, and 10 ANALYTIC structures in patient mm (elliptic cylinders and ellipsoids, one rotated, a 3 mm sphere, a
ring, an island inside the ring's hole, a structure with a hole on some slices, a two-part structure, a cone). Each
slice's contours are polygons with vertices ON the analytic ellipses (about one per mm, rounded to the 6 decimals
the RTSTRUCT stores). Truth = the voxel centres inside those polygons (even-odd over a slice's contours): decided
exactly from the ellipse (an inscribed N-gon contains the ellipse shrunk by cos(pi/N)) and, in the thin band where
that does not decide, by matplotlib's point-in-polygon test on the stored vertices. The number of centres where the
polygon and the analytic ellipse disagree is reported too. A second case: a CT with ``--readers`` RTSTRUCT files of
one GTV each (perturbed ellipsoids). A third case (import only): the same 10 structures on a CT whose slices are NOT
uniform (:func:`make_nonuniform_geometry`: a slab of 2.0 mm slices between 3.0 mm ones at 150 slices, within radconf's
series check), truth on each slice's own z. dcmrtstruct2nii's mask is on ITK's uniform grid (spacing = the mean
step): it is compared with the truth by slice index (voxel k = slice k), which is where its contours should be.

Timed (time.perf_counter, one run each, every tool producing masks):

* radconf ``import_dicom`` (the whole command: scan, read CT, rasterise, write the NIfTI dataset);
* radconf read + rasterise (CT headers -> geometry, ``read_structure_set`` + ``rasterise_roi`` per ROI), in memory;
* dcmrtstruct2nii (``convert_original_dicom=False``: reads the CT with SimpleITK, writes one mask .nii.gz per ROI);
* rt-utils (``RTStructBuilder.create_from`` + ``get_roi_mask_by_name`` per ROI, in memory). rt-utils' masks are
  indexed (row, column, slice) with slices sorted along the normal like radconf's, so ``mask.transpose(2, 0, 1)``
  is radconf's (slice, row, column) array (and ``transpose(1, 2, 0)`` the other way, for ``add_roi``; this is what
  TotalSegmentator's ``np.rot90(nifti_xyz, 1, (0, 1))`` achieves from a NIfTI (x, y, z) array).

Export: the truth masks painted as a 10-label map (body first) -> RTSTRUCT with radconf (CT headers, ``trace_volume``
+ ``build_rtstruct`` + ``write_dataset``, as ``radconf.dicom.export_case.rtstruct_rois``) and with rt-utils
(``create_new`` + ``add_roi`` + ``save``); both files are read back by radconf, dcmrtstruct2nii and rt-utils and
compared with the label map.

    python benchmarks/benchmark_dicom_rt.py --work /tmp/bench_dicom_rt

dcmrtstruct2nii 5 calls ``pydicom.read_file``, which pydicom 3 removed: the script aliases it to ``dcmread``.
Output: the Markdown tables (printed, ``--out``), ``.csv`` of the timings, ``.json`` of all numbers, ``.png`` chart.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
import dicom_rt_cases as cases
import numpy as np
from benchmark_common import write_tables

CASE = "CASE_0001"


def _timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _array(path: Path, geometry) -> np.ndarray:
    """A NIfTI mask as radconf's (slice, row, column) array, after checking it is on the series' grid."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if not np.allclose(image.GetOrigin(), geometry.positions[0], atol=1e-3) or not np.allclose(
            np.reshape(image.GetDirection(), (3, 3)), geometry.direction, atol=1e-6):
        raise RuntimeError(f"{path} is not on the CT's grid (origin {image.GetOrigin()})")
    return sitk.GetArrayFromImage(image)


def radconf_import(folder: Path, raw: Path, dataset_id: int, geometry, keys: dict, readers: bool = False):
    """import_dicom on ``folder``; masks from the label map (Body = any label) or the reader masks."""
    from radconf.dicom.importer import import_dicom
    from radconf.dicom.names import normalise_name

    seconds, result = _timed(lambda: import_dicom(folder, dataset_id, "Bench", raw_root=raw, overwrite=True,
                                                  multi_reader=("gtv",) if readers else (), progress=False))
    if readers:
        return seconds, {k: _array(result.folder / "readers" / CASE / f"{k}_1.nii.gz", geometry) for k in keys}
    labels = _array(result.folder / "labelsTr" / f"{CASE}.nii.gz", geometry)
    values = json.loads((result.folder / "dataset.json").read_text())["labels"]
    return seconds, {k: labels > 0 if k == "Body" else labels == values[normalise_name(k)] for k in keys}


def radconf_read(ct: Path, jobs: list) -> tuple[float, dict]:
    """CT headers -> geometry, then read_structure_set + rasterise_roi; ``jobs``: [(file, {ROI name: key})]."""
    from radconf.dicom.scan import scan_folder
    from radconf.dicom.series import check_series
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set

    def run():
        geometry = check_series(next(iter(scan_folder(ct).ct_series.values())))
        masks = {}
        for path, rois in jobs:
            for roi in read_structure_set(path).rois:
                if roi.name in rois:
                    masks[rois[roi.name]] = rasterise_roi(roi, geometry)[0]
        return masks
    return _timed(run)


def dcmrtstruct2nii_read(ct: Path, jobs: list, out: Path, geometry) -> tuple[float, dict]:
    """dcmrtstruct2nii per file (masks written as .nii.gz, read back untimed)."""
    import pydicom

    if not hasattr(pydicom, "read_file"):
        pydicom.read_file = pydicom.dcmread  # dcmrtstruct2nii 5 predates pydicom 3
    from dcmrtstruct2nii import dcmrtstruct2nii
    from dcmrtstruct2nii.adapters.convert.filenameconverter import FilenameConverter

    folders = [out / f"{n}_{Path(path).stem}" for n, (path, _) in enumerate(jobs)]
    seconds, _ = _timed(lambda: [dcmrtstruct2nii(str(path), str(ct), str(folder), structures=list(rois),
                                                 convert_original_dicom=False)
                                 for (path, rois), folder in zip(jobs, folders)])
    name = FilenameConverter().convert
    files = {key: folder / f"{name(f'mask_{roi}')}.nii.gz" for (_, rois), folder in zip(jobs, folders)
             for roi, key in rois.items()}  # no file: a ROI without contours
    return seconds, {key: _array(f, geometry) > 0 if f.exists() else np.zeros(geometry.shape, bool)
                     for key, f in files.items()}


def rtutils_read(ct: Path, jobs: list) -> tuple[float, dict]:
    """rt-utils create_from + get_roi_mask_by_name per ROI; (row, column, slice) -> (slice, row, column)."""
    from rt_utils import RTStructBuilder

    def run():
        masks = {}
        for path, rois in jobs:
            rt = RTStructBuilder.create_from(str(ct), str(path))
            for roi, key in rois.items():
                try:
                    masks[key] = rt.get_roi_mask_by_name(roi).transpose(2, 0, 1)
                except AttributeError:  # a ROI without contours has no ContourSequence (type 3), which rt-utils needs
                    masks[key] = np.zeros((len(rt.series_data), *rt.series_data[0].pixel_array.shape), bool)
        return masks
    return _timed(run)


def radconf_export(ct: Path, labels: np.ndarray, names: list, path: Path) -> float:
    """CT headers (reference + geometry), trace_volume + build_rtstruct + write_dataset."""
    from radconf.dicom.export_case import ExportStructure, rtstruct_rois
    from radconf.dicom.exporter import series_geometry_table
    from radconf.dicom.rtstruct_writer import build_rtstruct, write_dataset
    from radconf.dicom.scan import scan_folder

    def run():
        source = next(iter(series_geometry_table(scan_folder(ct)).values()))
        structures = [ExportStructure(n, (40 * v % 256, 255 - 25 * v, 90), (v,)) for v, n in enumerate(names, 1)]
        ds = build_rtstruct(source.reference, rtstruct_rois(labels, source.geometry, structures, "benchmark"),
                            label="radconf")
        return write_dataset(ds, path)
    return _timed(run)[0]


def rtutils_export(ct: Path, labels: np.ndarray, names: list, path: Path) -> float:
    """rt-utils create_new + add_roi (mask as (row, column, slice)) + save."""
    from rt_utils import RTStructBuilder

    def run():
        rt = RTStructBuilder.create_new(str(ct))
        for value, name in enumerate(names, start=1):
            rt.add_roi(mask=(labels == value).transpose(1, 2, 0), name=name)
        rt.save(str(path))
    return _timed(run)[0]


IMPORT_TOOLS = {"radconf import_dicom": "whole command: scan, read CT, rasterise, write NIfTI dataset",
                "radconf read + rasterise": "CT headers, read_structure_set + rasterise_roi, in memory",
                "dcmrtstruct2nii": "reads CT (SimpleITK), writes one mask .nii.gz per ROI",
                "rt-utils": "create_from (reads CT pixels) + get_roi_mask_by_name, in memory"}
READERS = ("radconf", "dcmrtstruct2nii", "rt-utils")


def _read_with(reader: str, ct: Path, jobs: list, out: Path, geometry) -> tuple[float, dict]:
    if reader == "dcmrtstruct2nii":
        return dcmrtstruct2nii_read(ct, jobs, out, geometry)
    return (radconf_read if reader == "radconf" else rtutils_read)(ct, jobs)


def _import_task(ct: Path, jobs: list, truth: dict, geometry, dataset_id: int, peers: bool, readers: bool,
                 log) -> dict:
    """Every tool of :data:`IMPORT_TOOLS` on the case of CT folder ``ct`` (its parent holds the RTSTRUCT files)."""
    folder, results = ct.parent, {}
    for tool in IMPORT_TOOLS if peers else list(IMPORT_TOOLS)[:2]:
        if tool == "radconf import_dicom":
            seconds, masks = radconf_import(folder, folder.parent / "nnUNet_raw", dataset_id, geometry, truth, readers)
        else:  # radconf read + rasterise, dcmrtstruct2nii, rt-utils
            seconds, masks = _read_with(tool.split(" ")[0], ct, jobs, folder.parent / "dcmrtstruct2nii" / folder.name,
                                        geometry)
        results[tool] = {"seconds": seconds, **cases.agreement(masks, truth)}
        log(f"  {tool:26s} {seconds:8.2f} s  differing voxels {results[tool]['total_differing']}")
    return results


def _export_task(work: Path, ct: Path, case: cases.Case, peers: bool, log) -> dict:
    names, (labels, truth) = list(case.truth), cases.label_map(case)
    exporters = {"radconf": radconf_export, "rt-utils": rtutils_export} if peers else {"radconf": radconf_export}
    results = {}
    for tool, export in exporters.items():
        path = work / "export" / f"{tool}_RTSTRUCT.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = export(ct, labels, names, path)
        results[tool] = entry = {"seconds": seconds, "file_mb": path.stat().st_size / 1e6, "read_back": {}}
        for reader in READERS if peers else READERS[:1]:
            _, masks = _read_with(reader, ct, [(path, {n: n for n in names})], work / "readback" / tool, case.geometry)
            entry["read_back"][reader] = cases.agreement(masks, truth)
        back = ", ".join(f"{r} {a['total_differing']}" for r, a in entry["read_back"].items())
        log(f"  {tool:26s} {seconds:8.2f} s  read back, differing voxels: {back}")
    return results


def run_benchmark(work: str | Path, size: int = cases.FULL_SIZE, slices: int = cases.FULL_SLICES,
                  n_readers: int = 4, names: list[str] | None = None, peers: bool = True, nonuniform: bool = True,
                  log=print) -> dict:
    """Builds and writes both cases, runs every tool once on the same files (see the module docstring).

    Args:
        work: folder for the DICOM files and the tools' outputs (created).
        size: rows = columns; slices: number of slices; n_readers: reader structure sets of the second case.
        names: the structures of the first case (default all 10 of :func:`dicom_rt_cases.structures`; Body must
            be one).
        peers: also run dcmrtstruct2nii and rt-utils.
        nonuniform: also the third case (the first case's structures on non-uniform slices, import only).
        log: progress printer.

    Returns:
        All numbers: ``grid``, ``rois`` (truth voxels, contours, vertices, polygon-vs-ellipse centres),
        ``import`` (task -> tool -> seconds + :func:`dicom_rt_cases.agreement`), ``nonuniform`` (its grid and
        steps), ``export`` (tool -> seconds, file MB, read_back).
    """
    work, geometry, start = Path(work), cases.make_geometry(size, slices), time.perf_counter()
    case, readers = cases.structure_case(geometry, names), cases.readers_case(geometry, n_readers)
    ct, files = cases.write_case(work / "case_rois", case)
    ct2, files2 = cases.write_case(work / "case_readers", readers, {r: {"GTV": r} for r in readers.truth},
                                   cases.case_hu(case))
    log(f"cases built and written in {time.perf_counter() - start:.1f} s: {geometry.describe()}, "
        f"{len(case.truth)} ROIs, {n_readers} reader structure sets")
    results = {"grid": geometry.describe(), "shape": list(geometry.shape), "spacing": list(geometry.spacing),
               "rois": cases.case_summary(case), "rtstruct_mb": files[0].stat().st_size / 1e6, "import": {}}
    log(f"import of {len(case.truth)} ROIs:")
    results["import"]["rois"] = _import_task(ct, [(files[0], {n: n for n in case.truth})], case.truth, geometry, 901,
                                             peers, False, log)
    log(f"import of {n_readers} reader structure sets:")
    results["import"]["readers"] = _import_task(ct2, [(path, {"GTV": r}) for path, r in zip(files2, readers.truth)],
                                                readers.truth, geometry, 902, peers, True, log)
    if nonuniform:
        task, results["nonuniform"], results["import"][task] = _nonuniform_task(work, size, slices,
                                                                                list(case.truth), peers, log)
    log(f"export of a {len(case.truth)}-structure label map:")
    results["export"] = _export_task(work, ct, case, peers, log)
    return results


def _nonuniform_task(work: Path, size: int, slices: int, names: list, peers: bool, log) -> tuple[str, dict, dict]:
    """The structures ``names`` on :func:`dicom_rt_cases.make_nonuniform_geometry`, written and imported by every
    tool; returns (task name, :func:`dicom_rt_cases.steps_summary`, :func:`_import_task` results)."""
    geometry = cases.make_nonuniform_geometry(size, slices)
    case = cases.structure_case(geometry, names)
    ct, files = cases.write_case(work / "case_nonuniform", case)
    summary = cases.steps_summary(geometry)
    task = f"{len(case.truth)} ROIs, non-uniform slices"
    log(f"import of {task} ({geometry.describe()}, steps {summary['steps_mm']} mm):")
    jobs = [(files[0], {n: n for n in case.truth})]
    return task, summary, _import_task(ct, jobs, case.truth, geometry, 903, peers, False, log)


def header_lines(results: dict) -> list[str]:
    """Command, machine and case (grid, vertices, the polygon-vs-ellipse check)."""
    differ = sum(r["polygon_vs_analytic_centres"] for r in results["rois"].values())
    vertices = sum(r["vertices"] for r in results["rois"].values())
    case = (f"Case: {results['grid']}, {len(results['rois'])} ROIs ({vertices} vertices, RTSTRUCT "
            f"{results['rtstruct_mb']:.1f} MB); truth = voxel centres inside the stored polygons (centres where a "
            f"polygon and its analytic ellipse disagree: {differ}). One run per tool; ratios are seconds / radconf's "
            f"seconds in the same run.")
    lines = [f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ", case]
    if "nonuniform" in results:
        grid = results["nonuniform"]
        lines[-1] += "  "
        lines.append(f"Non-uniform case: the same structures on {grid['grid']} (mean step), slice steps "
                     f"{' and '.join(f'{d:g}' for d in grid['steps_mm'])} mm (median {grid['median_step_mm']:g} mm), "
                     f"up to {grid['max_deviation_mm']:.2f} mm from the uniform grid of the mean step; truth on each "
                     f"slice's own z; dcmrtstruct2nii's mask (ITK's uniform grid) compared by slice index (voxel k = "
                     f"slice k).")
    return lines


def _cell(entry: dict) -> str:
    return f"{entry['differing']} ({entry['dice']:.6f})"


def import_lines(results: dict) -> list[str]:
    """Timing table and per-ROI agreement tables of the imports (peer s / radconf s in the same run)."""
    header = "| task | tool | what | seconds | x radconf import_dicom | x radconf read + rasterise | differing voxels"
    lines = [header + " | exact |", "|---|---|---|--:|--:|--:|--:|---|"]
    for task, tools in results["import"].items():
        whole, memory = tools["radconf import_dicom"]["seconds"], tools["radconf read + rasterise"]["seconds"]
        for tool, r in tools.items():
            lines.append(f"| {task} | {tool} | {IMPORT_TOOLS[tool]} | {r['seconds']:.2f} | {r['seconds'] / whole:.2f} "
                         f"| {r['seconds'] / memory:.2f} | {r['total_differing']} | {'yes' if r['exact'] else 'no'} |")
    for task, tools in results["import"].items():
        names = list(IMPORT_TOOLS)[:len(tools)]
        lines += ["", f"Import ({task}): differing voxels (Dice) against the truth", "",
                  "| ROI | truth voxels | " + " | ".join(names) + " |", "|---|--:|" + "--:|" * len(names)]
        for key, first in tools["radconf import_dicom"]["rois"].items():
            lines.append(f"| {key} | {first['truth_voxels']} | "
                         + " | ".join(_cell(tools[t]["rois"][key]) for t in names) + " |")
    return lines


def export_lines(results: dict) -> list[str]:
    """Export timing and the read-back agreement of each exported file."""
    export = results["export"]
    base, readers = export["radconf"]["seconds"], list(export["radconf"]["read_back"])
    lines = ["| export | seconds | x radconf | file MB | " + " | ".join(f"read back by {r}: differing voxels"
                                                                       for r in readers) + " |",
             "|---|--:|--:|--:|" + "--:|" * len(readers)]
    for tool, r in export.items():
        lines.append(f"| {tool} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | {r['file_mb']:.1f} | "
                     + " | ".join(str(r["read_back"][x]["total_differing"]) for x in readers) + " |")
    columns = [(tool, reader) for tool in export for reader in readers]
    lines += ["", "Export round trip: differing voxels (Dice) against the label map", "",
              "| structure | voxels | " + " | ".join(f"{t} file, {x}" for t, x in columns) + " |",
              "|---|--:|" + "--:|" * len(columns)]
    for key, first in export["radconf"]["read_back"]["radconf"]["rois"].items():
        lines.append(f"| {key} | {first['truth_voxels']} | "
                     + " | ".join(_cell(export[t]["read_back"][x]["rois"][key]) for t, x in columns) + " |")
    return lines


def timing_rows(results: dict) -> list[dict]:
    rows = [{"task": f"import {task}", "tool": tool, "seconds": round(r["seconds"], 3),
             "total_differing": r["total_differing"]} for task, tools in results["import"].items()
            for tool, r in tools.items()]
    return rows + [{"task": "export", "tool": tool, "seconds": round(r["seconds"], 3),
                    "total_differing": r["read_back"]["radconf"]["total_differing"]}
                   for tool, r in results["export"].items()]


def save_chart(rows: list[dict], path: Path) -> Path:
    """Grouped horizontal bars: seconds per tool and task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    colours = {"radconf": "tab:blue", "dcmrtstruct2nii": "tab:orange", "rt-utils": "tab:green"}
    axis.barh(range(len(rows)), [r["seconds"] for r in rows], color=[colours[r["tool"].split(" ")[0]] for r in rows])
    axis.set_yticks(range(len(rows)), [f"{r['task']}: {r['tool']}" for r in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set(xlabel="wall seconds (one run)", title="DICOM-RT import and export")
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for the DICOM files and outputs (default: a temp dir, "
                                                     "removed at the end)")
    parser.add_argument("--size", type=int, default=cases.FULL_SIZE, help="rows = columns (default 512)")
    parser.add_argument("--slices", type=int, default=cases.FULL_SLICES, help="number of slices (default 150)")
    parser.add_argument("--readers", type=int, default=4, help="reader structure sets of the second case")
    parser.add_argument("--out", default=None, help="Markdown table (default <work>/dicom_rt_benchmark.md; .csv, "
                                                    ".json, .png beside it)")
    parser.add_argument("--no_peers", action="store_true", help="radconf only (dcmrtstruct2nii, rt-utils skipped)")
    args = parser.parse_args(argv)
    from radconf.io.files import atomic_write_json

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="radconf_bench_dicom_rt_"))
    out = Path(args.out) if args.out else work / "dicom_rt_benchmark.md"
    if not args.no_peers:
        import dcmrtstruct2nii  # noqa: F401 - imported before timing (its import prints a citation)
        import rt_utils  # noqa: F401
    try:
        start = time.perf_counter()
        results = run_benchmark(work / "files", args.size, args.slices, args.readers, peers=not args.no_peers)
        command = (f"python benchmarks/benchmark_dicom_rt.py --size {args.size} --slices {args.slices} --readers "
                   f"{args.readers}" + (" --no_peers" if args.no_peers else ""))
        results.update(command=command, machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                       f"CPU(s), Python {platform.python_version()}, numpy {np.__version__}",
                       total_seconds=time.perf_counter() - start)
        lines = [*header_lines(results), "", *import_lines(results), "", *export_lines(results)]
        write_tables(out, lines, timing_rows(results))
        atomic_write_json(out.with_suffix(".json"), results)
        save_chart(timing_rows(results), out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}; total {results['total_seconds']:.0f} s")
    finally:
        if not args.work:
            shutil.rmtree(work / "files", ignore_errors=True)


if __name__ == "__main__":
    main()
