"""Which executor runs a plan, and on which devices: this machine's (`local`) or a Ray cluster's (`ray`).

For Ray the devices are slots cut from the cluster's resources (read when the plan is made, so a job that no node
can hold is refused before anything runs): one slot per GPU of the cluster, or N CPU slots. Ray picks the node
and the GPU ids of each attempt; the driver only decides how many run at once and how many GPUs each gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from spectrabench.errors import UserError, did_you_mean
from spectrabench.hardware import DeviceSpec, discover_gpus, parse_devices

if TYPE_CHECKING:
    from spectrabench.execution.executor import Executor

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")

INSTALL_HINT = "pip install 'spectrabench[ray]'"
_GB = 1024**3
_PROBE_TIMEOUT_S = 60.0


def import_ray() -> Any:
    """The `ray` module, or a UserError that says how to install the extra."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


def connect(address: str | None) -> Any:
    """Connect this process to Ray once: to `address` ('auto' or host:port) or, when None, a new local instance.

    Returns:
        The `ray` module, initialised.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address is None:
            # A private local instance: no dashboard (it only costs start-up time here), Ray's logs to files.
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="warning")
        else:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to the Ray cluster at '{address}': {first}",
                        hint="start one with `ray start --head`, check the address (host:port of the head's GCS), "
                             "or leave out --ray-address to start a local Ray") from None
    return ray


def check_backend(name: str) -> None:
    """Refuse an unknown `--backend` with the closest known one."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'", hint=did_you_mean(name, BACKENDS, "backends"))


def pool_devices(backend: str, text: str, *, ray_address: str | None = None, gpus_per_job: int = 1
                 ) -> list[DeviceSpec]:
    """The devices a run may use, from `--devices` text, checked against what one job needs.

    Args:
        backend: "local" or "ray".
        text: The `--devices` value (auto, cpu, cpu:N, cuda, cuda:0,1).
        ray_address: For Ray: 'auto', host:port, or None for a new local Ray.
        gpus_per_job: GPUs every job gets; they must fit on one machine (Ray: one node).

    Raises:
        UserError: Unknown backend, devices that do not exist, the Ray extra missing, or a job that cannot fit.
    """
    check_backend(backend)
    if backend == "ray":
        return _ray_slots(text, ray_address, gpus_per_job)
    devices = parse_devices(text)
    _check_job_fits(devices, gpus_per_job, [len(devices)], "this machine")
    return devices


def make_executor(backend: str, devices: list[DeviceSpec], env: Mapping[str, str], *,
                  ray_address: str | None = None) -> Executor:
    """The executor of `backend` on `devices`; workers start from `env`."""
    check_backend(backend)
    if backend == "ray":
        from spectrabench.execution.ray import RayExecutor

        return RayExecutor(devices, env, address=ray_address)
    from spectrabench.execution.local import LocalExecutor

    return LocalExecutor(devices, env)


def _check_job_fits(devices: list[DeviceSpec], gpus_per_job: int, gpus_per_machine: list[int], where: str) -> None:
    if gpus_per_job < 1:
        raise UserError(f"--gpus-per-job must be 1 or more, got {gpus_per_job}", hint="use --gpus-per-job 1")
    if gpus_per_job == 1:
        return
    if devices and devices[0].kind != "cuda":
        raise UserError(f"--gpus-per-job {gpus_per_job} needs GPUs, but the devices are CPU slots",
                        hint="use --devices cuda, or leave out --gpus-per-job")
    largest = max(gpus_per_machine, default=0)
    if gpus_per_job > largest:
        shape = ", ".join(str(n) for n in gpus_per_machine)
        raise UserError(f"a job needs {gpus_per_job} GPUs on one machine, but the largest in {where} has {largest} "
                        f"(GPUs per machine: {shape})",
                        hint=f"use --gpus-per-job {largest} or less, or add a machine with {gpus_per_job} GPUs")


def _ray_slots(text: str, address: str | None, gpus_per_job: int) -> list[DeviceSpec]:
    """Slots cut from the live nodes of the Ray cluster."""
    ray = connect(address)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    gpus = [int(node["Resources"].get("GPU", 0)) for node in nodes]
    cpus = [int(node["Resources"].get("CPU", 0)) for node in nodes]
    memory = sum(float(node["Resources"].get("memory", 0)) for node in nodes) / _GB
    where = f"the Ray cluster at {address or 'a new local Ray'} ({len(nodes)} node{'s' * (len(nodes) != 1)})"
    spec = text.strip().lower()
    kind, sep, arg = (part.strip() for part in spec.partition(":"))
    if kind == "auto" and not sep:
        kind, sep = ("cuda", "") if sum(gpus) else ("cpu", "")
    if kind == "cuda":
        if sep:
            raise UserError(f"--devices '{text}': on Ray the GPU ids are assigned by Ray on each node",
                            hint="use --devices cuda for every GPU of the cluster, or cpu:N")
        if not sum(gpus):
            raise UserError(f"--devices '{text}': {where} has no GPU", hint="use --devices cpu or cpu:N")
        _check_job_fits([DeviceSpec(id="x", kind="cuda", index=0, name="", total_mem_gb=0, free_mem_gb=0)],
                        gpus_per_job, gpus, where)
        name, total_gb, free_gb = _smallest_gpu(ray, [n for n, g in zip(nodes, gpus, strict=True) if g])
        return [DeviceSpec(id=f"ray-gpu:{i}", kind="cuda", index=i, name=name, total_mem_gb=total_gb,
                           free_mem_gb=free_gb) for i in range(sum(gpus))]
    if kind != "cpu":
        # Same words and hints as the local backend.
        parse_devices(text)
        raise UserError(f"--devices '{text}' is not available on Ray", hint="use auto, cuda, cpu or cpu:N")
    _check_job_fits([DeviceSpec(id="x", kind="cpu", index=0, name="", total_mem_gb=0, free_mem_gb=0)],
                    gpus_per_job, gpus, where)
    total = sum(cpus)
    try:
        n = int(arg) if sep else 1
    except ValueError:
        raise UserError(f"--devices '{text}': '{arg}' is not a number of CPU slots",
                        hint=f"use cpu:N with N from 1 to {total}") from None
    if not 1 <= n <= total:
        raise UserError(f"--devices '{text}': {where} has {total} CPUs for {n} slots",
                        hint=f"use cpu:N with N from 1 to {total}")
    # Each slot must fit on one node: a slot is one Ray task.
    threads = max(1, min(max(cpus), total // n))
    return [DeviceSpec(id=f"ray-cpu:{i}", kind="cpu", index=i, name="CPU (Ray)", total_mem_gb=memory / n,
                       free_mem_gb=memory / n, threads=threads) for i in range(n)]


def _node_gpus() -> list[tuple[str, float, float]]:
    """On a node: every GPU's name, total and free memory (GB), from NVML."""
    return [(g.name, g.total_mem_gb, g.free_mem_gb) for g in discover_gpus()]


def _smallest_gpu(ray: Any, nodes: list[dict[str, Any]]) -> tuple[str, float, float]:
    """The smallest GPU of the nodes that have GPUs: Ray may place any job on any of them, so size for it.

    Returns ("GPU (memory unknown)", 0, 0) when NVML reports none (GPUs declared to Ray on a node without them);
    batch sizing then falls back to 1.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_node_gpus)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote()
            for node in nodes]
    try:
        found = [gpu for per_node in ray.get(refs, timeout=_PROBE_TIMEOUT_S) for gpu in per_node]
    except ray.exceptions.GetTimeoutError:
        found = []
    if not found:
        return "GPU (memory unknown)", 0.0, 0.0
    return min(found, key=lambda gpu: gpu[1])
