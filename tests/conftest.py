import os

import mlx.core as mx
import pytest
from device import FLOAT64_MESSAGE, HAS_FLOAT64, use_device  # noqa: E402  (tests/ is on sys.path)
from hypothesis import HealthCheck, settings

import autodiff as ad
from autodiff.config import config

use_device()  # AUTODIFF_TEST_DEVICE=cpu|gpu: see tests/device.py

# Typecheck every transform's output; test most programs uncompiled (mx.compile runs a C++
# compiler per new fused graph on CPU), a few tests switch compilation back on.
config.typecheck = True
config.compile = False

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("AUTODIFF_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("ci")


@pytest.fixture
def compiled():
    """Run the test with mx.compile on (restored afterwards)."""
    with config.override(compile=True):
        yield


@pytest.fixture(autouse=True)
def _seed():
    mx.random.seed(0)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a device without float64 (MLX's GPUs), a test that made a float64 array there is
    reported as skipped, with MLX's message: the row tests skip such rows themselves
    (tests/device.py), and this covers the rest."""
    outcome = yield
    rep = outcome.get_result()
    if HAS_FLOAT64 or call.excinfo is None or rep.outcome != "failed":
        return
    if FLOAT64_MESSAGE in str(call.excinfo.value):
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {FLOAT64_MESSAGE}")


_ = ad
