import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=100, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture(scope="session")
def page250():
    from dwd_fast.data import reference_page

    return reference_page(250, seed=0)


@pytest.fixture(scope="session")
def page2000():
    from dwd_fast.data import reference_page

    return reference_page(2000, seed=0)


def torch_or_skip():
    return pytest.importorskip("torch")


def assert_unchanged(before, after):
    """Inputs are never modified."""
    assert before.dtype == after.dtype and np.array_equal(before, after, equal_nan=True)


@pytest.fixture(scope="module", params=[1, 2], ids=["page-threads=1", "page-threads=2"])
def page_threads(request):
    """Runs a module's tests with one page's phases on one thread, then split over two threads even for
    tiny inputs (the seams between the threads' rows, runs and components are where splitting can go
    wrong)."""
    from dwd_fast import _cpu

    old = _cpu.page_threads(request.param, 0)
    yield request.param
    _cpu.page_threads(*old)
