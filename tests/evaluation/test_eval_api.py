"""The public API imports cheaply and exposes the documented names.

No torch, SimpleITK or matplotlib at import time.
"""
from __future__ import annotations

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, radconf.evaluation, radconf.cli.evaluate, radconf.cli.compare; "
        "print(sorted(m for m in ('torch', 'SimpleITK', 'matplotlib', 'monai', 'surface_distance', 'statsmodels') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_documented_names():
    from radconf import evaluation

    for name in ("evaluate_folders", "compute_metrics", "StructureMetrics", "SurfaceDistances",
                 "compute_surface_distances", "continuous_metrics", "evaluate_level_maps", "compare_methods",
                 "two_stage_bky", "benjamini_hochberg", "paired_tests"):
        assert callable(getattr(evaluation, name)), name
