"""The session's planned tiny phantom, copied once for the tests of nnU-Net's internals and of device setup."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def planned(tmp_path_factory, planned_store):
    """A copy of the planned phantom (cpu preset) with nnU-Net's folders pointing at it; nothing here trains."""
    from tests.conftest import (
        DATASET_ID,
        PLANS,
        _make_dirs,
        copy_store,
        in_process_nnunet,
    )

    dirs = _make_dirs(tmp_path_factory.mktemp("compat"))
    copy_store(planned_store, dirs)
    with pytest.MonkeyPatch.context() as patch, in_process_nnunet(patch, dirs):
        yield {"plans": PLANS, "dataset": DATASET_ID, "patch": patch}
