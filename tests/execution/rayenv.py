"""Ray for tests: started with HOME and Ray's temp folder isolated, so no token or session lands in the real home
or /tmp/ray, without token auth, and shut down afterwards. Skips the calling module cleanly when the ray extra is
not installed."""

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
        # Private loopback clusters need no token; with one, the first instance's token setup sticks to this
        # process and a later instance (in another HOME) fails to start its GCS.
        patch.setenv("RAY_AUTH_MODE", "disabled")
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


@contextmanager
def two_node_cluster(home: Path, gpus_per_node: int = 2, cpus_per_node: int = 2) -> Iterator[str]:
    """A Ray cluster of two nodes on this machine (`ray.cluster_utils.Cluster`), with fake GPUs; yields its address.

    This process is connected to it for the duration of the block.
    """
    with ray_environment(home):
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node, "num_gpus": gpus_per_node,
                                                                "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False, logging_level="warning")
            yield str(cluster.address)
        finally:
            ray.shutdown()
            cluster.shutdown()
