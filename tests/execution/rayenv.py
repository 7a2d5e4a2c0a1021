"""Ray for tests: started with HOME and Ray's temp folder isolated, so no token or session lands in the real home
or /tmp/ray, and shut down afterwards. Skips the calling module cleanly when the ray extra is not installed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def ray_environment(home: Path) -> Iterator[Path]:
    """Point HOME at `home` and Ray's temp root at a short fresh folder (Ray limits socket path lengths)."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'spectrabench[ray]')")
    home.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="sbr", dir="/tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("RAY_TMPDIR", str(temp))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def local_ray(home: Path, **init_args: object) -> Iterator[None]:
    """A local Ray instance (dashboard off) for the duration of the block."""
    with ray_environment(home):
        import ray

        ray.init(include_dashboard=False, log_to_driver=False, logging_level="warning", **init_args)
        try:
            yield
        finally:
            ray.shutdown()
