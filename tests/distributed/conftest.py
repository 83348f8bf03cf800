"""One local Ray cluster for every test of this folder: starting one takes seconds.

Ray 2.59+ turns on token authentication for a new local cluster and, without a token, writes
one to ~/.ray/auth_token. The tests give the cluster a token of their own in the environment
instead, so nothing outside the test's processes is touched. Ray reads its authentication
settings once, when it is imported, so they are set before the first `import ray`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
pytest.importorskip("ray.data")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """Ray, connected to a local 2-CPU cluster that is shut down after the last test."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
