import os

import mlx.core as mx
import pytest
from hypothesis import HealthCheck, settings

import autodiff as ad
from autodiff.config import config

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


_ = ad
