"""Devices for data-parallel training (JAX linker only): the mesh, where parameters and batches live, and
JAX's multi-process runtime. With :mod:`rnnlm.engine`, the engine layer; it imports JAX, never a graph
engine.

Data parallelism the JAX way -- no collective, parameter server or launcher of rnnlm's own:

- a :class:`Placement` is a one-axis :class:`jax.sharding.Mesh` (axis ``"batch"``) over N devices;
- the model's shared variables (parameters, optimizer state, learning rate) hold JAX arrays *replicated*
  over the mesh (:meth:`Placement.place_shared`);
- every batch is *sharded* along its batch axis (``x``, ``y``, ``mask``, states: axis 1, time-major;
  dropout masks: axis 0) with a :class:`~jax.sharding.NamedSharding`;
- the PyTensor JAX linker's ``jax.jit`` then runs the one compiled train step SPMD, and XLA's partitioner
  inserts the all-reduce of the gradients (and of the loss and token count). Outputs come back replicated
  (scalars, parameters) or sharded (carried states); :meth:`Placement.to_host` gathers them.

Several processes (hosts, or processes on one machine): :func:`initialize` starts
``jax.distributed.initialize`` (CPU collectives over gloo); the mesh then spans every process's devices,
each process supplies its own columns of every batch (:meth:`Placement.columns`,
:meth:`Placement.from_local`) and process 0 is the only :attr:`Placement.writer`.
"""

from __future__ import annotations

import math
import os
import socket
import time

import numpy as np

from rnnlm import engine
from rnnlm.errors import ConfigError, EngineError

#: The mesh's one axis: the batch.
AXIS = "batch"

#: Seconds to wait for the coordinator and the other processes (``--coordinator-timeout``).
DEFAULT_TIMEOUT = 120.0

ONE_LINE = (
    "multi-device training is a JAX-linker feature (use --linker jax; Aesara runs on its C linker only)"
)


class DistributedError(EngineError):
    """The distributed runtime could not start: a coordinator that cannot be reached, bad process ids."""


def _jax():
    try:
        import jax
    except ImportError:  # pragma: no cover - JAX is part of the pytensor extra
        raise EngineError("multi-device training needs JAX: pip install -e '.[pytensor]'") from None
    return jax


def _env_int(name: str):
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not an integer") from None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; :class:`DistributedError` otherwise."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"--coordinator {text!r}: expected HOST:PORT with a port in 1..65535")
    return host, int(port)


def _wait_for(host: str, port: int, timeout: float) -> None:
    """Return once a TCP connection to host:port succeeds; :class:`DistributedError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, timeout))):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                why = e.strerror or type(e).__name__
                raise DistributedError(
                    f"coordinator {host}:{port} not reachable within {timeout:g} s ({why}); is process 0 "
                    f"running with the same --coordinator?"
                ) from None
            time.sleep(0.2)


def _check_local(host: str, port: int) -> None:
    """Process 0 runs the coordinator: ``host`` must be an address of this machine and ``port`` free."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise DistributedError(
            f"coordinator {host}:{port}: cannot resolve {host!r} ({e.strerror or e})"
        ) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as e:
            raise DistributedError(
                f"coordinator {host}:{port}: process 0 runs the coordinator, but cannot listen there "
                f"({e.strerror or e}): give an address of this machine and a free port"
            ) from None


_started: dict | None = None


def initialize(coordinator=None, num_processes=None, process_id=None, timeout=DEFAULT_TIMEOUT) -> dict | None:
    """Join a multi-process run: ``jax.distributed.initialize`` with CPU collectives over gloo.

    Settings come from the arguments, else from ``JAX_COORDINATOR_ADDRESS`` (JAX's own variable),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; with none of them given this does nothing and returns
    None. Must run before JAX starts its backends (before the first computation). Before JAX connects,
    the address is checked (process 0 must be able to listen on it; the others wait at most ``timeout``
    seconds for it to answer), so a bad address is one :class:`DistributedError`, not JAX's abort; JAX
    then waits up to ``timeout`` seconds for every process to join. Returns ``{"coordinator",
    "num_processes", "process_id"}``.
    """
    global _started
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = _env_int("JAX_NUM_PROCESSES") if num_processes is None else num_processes
    process_id = _env_int("JAX_PROCESS_ID") if process_id is None else process_id
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise DistributedError(f"a multi-process run needs {', '.join(given)}; missing {', '.join(missing)}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise DistributedError(f"--num-processes must be a positive integer, got {num_processes!r}")
    if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise DistributedError(
            f"--process-id {process_id!r} is out of range for --num-processes {num_processes} "
            f"(0..{num_processes - 1})"
        )
    if not timeout > 0:
        raise DistributedError(f"--coordinator-timeout must be positive, got {timeout!r}")
    host, port = parse_address(coordinator)
    settings = {"coordinator": f"{host}:{port}", "num_processes": num_processes, "process_id": process_id}
    if _started is not None:
        if _started != settings:
            raise DistributedError(f"this process already joined a distributed run as {_started}")
        return dict(_started)
    if process_id == 0:
        _check_local(host, port)
    else:
        _wait_for(host, port, timeout)
    jax = _jax()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            f"{host}:{port}", num_processes, process_id, initialization_timeout=max(1, math.ceil(timeout))
        )
    except (RuntimeError, ValueError) as e:  # e.g. called after JAX started its backends
        raise DistributedError(f"cannot start JAX's distributed runtime: {str(e).splitlines()[0]}") from None
    _started = settings
    return dict(settings)


def available() -> int:
    """Devices JAX sees (on every process together)."""
    return len(_jax().devices())


def device_count(spec) -> int:
    """``"all"`` or a positive integer -> the number of devices; more than JAX sees is an error."""
    jax = _jax()
    n_all = len(jax.devices())
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return n_all
    text = str(spec).strip()
    if isinstance(spec, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--devices must be a positive integer or 'all', got {spec!r}")
    n = int(text)
    if n > n_all:
        platform = jax.devices()[0].platform
        hint = (
            (
                " (virtual CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count=N or "
                "JAX_NUM_CPU_DEVICES=N before the run starts)"
            )
            if platform == "cpu"
            else ""
        )
        raise ConfigError(f"--devices {n}: JAX sees only {n_all} {platform} device(s){hint}")
    return n


def check_batch(batch_size: int, count: int) -> None:
    """The batch is split evenly over the devices: ``batch_size`` must divide by ``count``."""
    if batch_size % count:
        raise ConfigError(
            f"--batch-size {batch_size} does not divide by --devices {count}: each device takes an equal "
            f"share of every batch (try --batch-size {max(count, batch_size // count * count)})"
        )


class Placement:
    """A mesh of ``count`` devices along the batch axis (see the module docstring).

    With several processes, ``count`` must divide by the number of processes; each contributes its
    first ``count / processes`` devices, and supplies the matching columns of every batch.
    """

    def __init__(self, count: int):
        jax = _jax()
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self._jax, self._named, self._spec = jax, NamedSharding, PartitionSpec
        self.process_index, self.process_count = jax.process_index(), jax.process_count()
        if count % self.process_count:
            raise ConfigError(
                f"--devices {count} does not divide by {self.process_count} processes (each process "
                f"contributes the same number of devices)"
            )
        per = count // self.process_count
        devices = []
        for p in range(self.process_count):
            mine = [d for d in jax.devices() if d.process_index == p]
            if len(mine) < per:
                raise ConfigError(f"--devices {count}: process {p} has only {len(mine)} device(s)")
            devices += mine[:per]
        self.count = count
        self.mesh = Mesh(np.array(devices), (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def __repr__(self) -> str:
        return f"Placement({self.count} devices, {self.process_count} process(es))"

    @property
    def writer(self) -> bool:
        """Whether this process writes files (checkpoints, logs, progress): process 0 only."""
        return self.process_index == 0

    @property
    def platform(self) -> str:
        return self.mesh.devices.flat[0].platform

    # -- batches -------------------------------------------------------------------------------------
    def columns(self, width: int) -> slice:
        """This process's columns of a global batch of ``width`` (all of them with one process)."""
        check_batch(width, self.count)
        per = width // self.process_count
        return slice(self.process_index * per, (self.process_index + 1) * per)

    def global_width(self, local_width: int) -> int:
        return local_width * self.process_count

    def sharding(self, ndim: int, axis: int):
        """Sharded along ``axis`` over the mesh, whole along the other axes."""
        spec = [None] * ndim
        spec[axis] = AXIS
        return self._named(self.mesh, self._spec(*spec))

    def from_local(self, array, axis: int):
        """A global array from this process's columns (``axis``) of it; a JAX array passes through."""
        if isinstance(array, self._jax.Array):
            return array
        array = np.asarray(array)
        shape = list(array.shape)
        shape[axis] *= self.process_count
        return self._jax.make_array_from_process_local_data(
            self.sharding(array.ndim, axis), array, tuple(shape)
        )

    def from_global(self, array, axis: int):
        """A global array from the whole array (the same on every process): sharded along ``axis`` when
        its width divides by the device count, else replicated. A JAX array passes through."""
        if isinstance(array, self._jax.Array):
            return array
        array = np.asarray(array)
        sharding = self.sharding(array.ndim, axis) if array.shape[axis] % self.count == 0 else self.replicated
        return self._jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    # -- parameters and results ----------------------------------------------------------------------
    def replicate(self, array):
        array = np.asarray(array)
        return self._jax.make_array_from_callback(array.shape, self.replicated, lambda index: array[index])

    def place_shared(self, variables) -> None:
        """Replicate over the mesh every shared variable not already there (a fresh model's NumPy values,
        a value ``set_value`` put back: a restored checkpoint, a new learning rate)."""
        for v in variables:
            value = engine.stored(v)
            sharding = getattr(value, "sharding", None)
            if sharding is None or getattr(sharding, "mesh", None) != self.mesh:
                engine.store(v, self.replicate(np.asarray(value)))

    def to_host(self, array) -> np.ndarray:
        """A NumPy copy of a (global) array; gathered from every process when it is sharded over several
        (a collective: every process must call it)."""
        if not isinstance(array, self._jax.Array):
            return np.asarray(array)
        if array.is_fully_replicated or array.is_fully_addressable:
            return np.asarray(array)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    def run(self, fn, time_major, batch_major=(), local=True):
        """Call the compiled ``fn`` on placed inputs: ``time_major`` arrays (x, y, mask, states) sharded along
        axis 1, ``batch_major`` arrays (dropout masks) along axis 0. ``local``: they are this process's
        columns (training); else the whole batch, the same on every process (evaluation)."""
        place = self.from_local if local else self.from_global
        args = [place(a, 1) for a in time_major] + [place(a, 0) for a in batch_major]
        engine.trust_inputs(fn)
        return fn(*args)

    def agree(self, values) -> np.ndarray:
        """Every process's ``values`` (a 1-D float64 array), stacked (P, n): a collective, so that decisions
        taken on the clock or a Ctrl-C are the same on every process. One process: ``values[None]``."""
        values = np.asarray(values, np.float64).reshape(1, -1)
        if self.process_count == 1:
            return values
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(values, tiled=True)).reshape(
            self.process_count, -1
        )


def placement(devices, batch_size: int | None = None, linker: str = "jax") -> Placement | None:
    """The :class:`Placement` for a ``devices`` setting (None: one device, no placement); checks the linker,
    the device count and that ``batch_size`` divides by it."""
    if devices is None:
        return None
    if linker != "jax" or engine.name != "pytensor":
        raise ConfigError(f"--devices: {ONE_LINE}")
    text = str(devices).strip()
    if batch_size is not None and text.isdigit() and int(text) >= 1:
        check_batch(batch_size, int(text))  # the batch split first: it does not depend on the machine
    count = device_count(devices)
    if batch_size is not None:
        check_batch(batch_size, count)
    return Placement(count)
