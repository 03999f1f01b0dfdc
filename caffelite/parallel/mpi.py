"""The MPI world of this process and the few collectives data-parallel training needs.

A process started by mpiexec/srun finds its rank and size in its environment (PMI, PMIx,
Open MPI, MVAPICH, Slurm); only then is mpi4py imported (which starts MPI). A plain process,
or a job of one rank, never imports it and runs exactly as without this module.

Every collective here is non-blocking and polled against a deadline (CAFFELITE_MPI_TIMEOUT
seconds, default 300; 0 waits forever): a rank that died or hangs makes the others stop with
an error instead of waiting forever. An error on any rank ends the whole job (fail_together):
the rank prints one line and calls MPI_Abort, which the launcher turns into a nonzero exit.
"""
import contextlib
import os
import pickle
import sys
import time
import traceback

import numpy as np

from ..errors import CaffeliteError

# The world size as launchers put it in the environment of every rank they start: MPICH and
# Intel MPI (PMI), Open MPI, MVAPICH, Slurm's srun (whatever its --mpi plugin).
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                           "SLURM_STEP_NUM_TASKS")
DEFAULT_TIMEOUT = 300.0
# A collective is polled in a tight loop for up to a second, yielding the core to any process
# that wants it but never sleeping: a rank that sleeps while it waits for a slower one wakes
# up late on a busy machine, and one that spins without yielding takes the core from the rank
# it waits for when processes outnumber cores (LeNet b64 on two ranks of a busy 2-core
# machine, median iteration in four alternating rounds: 18-27 ms yielding, 23-32 ms
# spinning, 18-28 ms with sleeps). Longer waits (a test pass, rank 0 writing a snapshot)
# sleep up to 10 ms at a time.
SPIN_SECONDS = 1.0
MAX_SLEEP = 0.01
ABORT_GRACE_SECONDS = 0.5


class ParallelError(CaffeliteError):
    """Data-parallel training cannot go on (a rank stopped answering, MPI missing)."""


def launched_size(environ=None):
    """The world size a launcher announced in the environment, or 1. CAFFELITE_MPI=0 makes a
    process ignore its launcher; CAFFELITE_MPI=1 asks MPI for the size even without one."""
    environ = os.environ if environ is None else environ
    forced = environ.get("CAFFELITE_MPI", "").strip()
    if forced == "0":
        return 1
    for name in LAUNCHER_SIZE_VARIABLES:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) > 1:
            return int(value)
    return None if forced == "1" else 1  # None: only MPI itself knows


class World:
    """rank, size and the collectives of data-parallel training; size 1 needs no MPI."""

    def __init__(self, comm=None, timeout=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        if timeout is None:
            timeout = float(os.environ.get("CAFFELITE_MPI_TIMEOUT", DEFAULT_TIMEOUT) or 0)
        self.timeout = timeout

    @property
    def is_root(self):
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    def local_allgather(self, value):
        """The values of every rank on this machine (this rank's among them), in rank order."""
        if self.size == 1:
            return [value]
        from mpi4py import MPI

        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return local.allgather(value)
        finally:
            local.Free()

    # -- collectives ----------------------------------------------------------------------
    def allreduce_sum(self, array, what="allreduce"):
        """Sum a contiguous array over all ranks, in place."""
        if self.size > 1:
            from mpi4py import MPI

            self._wait(self.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM), what)
        return array

    def bcast_array(self, array, what="broadcast"):
        """Rank 0's values of a contiguous array, in place on every rank."""
        if self.size > 1:
            self._wait(self.comm.Ibcast(array, root=0), what)
        return array

    def bcast_object(self, value, what="broadcast"):
        """Rank 0's picklable value, returned on every rank."""
        if self.size == 1:
            return value
        data = pickle.dumps(value) if self.is_root else b""
        length = self.bcast_array(np.array([len(data)], dtype=np.int64), what)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root else \
            np.empty(int(length[0]), dtype=np.uint8)
        return pickle.loads(self.bcast_array(buf, what).tobytes())

    def _wait(self, request, what):
        """Poll request until done; ParallelError when the deadline passes."""
        start = time.monotonic()
        sleep = 0.0
        while not request.Test():
            waited = time.monotonic() - start
            if self.timeout and waited > self.timeout:
                raise ParallelError(
                    f"no answer from the other ranks in {what} after {waited:.0f} s (a rank "
                    f"died or hangs; CAFFELITE_MPI_TIMEOUT sets the limit, now "
                    f"{self.timeout:g} s)")
            if waited < SPIN_SECONDS:
                _yield()  # the core stays ours unless another process is waiting for it
            else:
                sleep = min(MAX_SLEEP, sleep + 0.0001)
                time.sleep(sleep)

    # -- faults ---------------------------------------------------------------------------
    def abort(self, code):
        """End every rank of the job now (MPI_Abort); never returns."""
        sys.stdout.flush()
        sys.stderr.flush()
        # The launcher forwards each rank's output through a pipe and stops reading it when
        # it tears the job down: give it a moment to pass the last lines on.
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(code)
        os._exit(code)  # pragma: no cover - Abort does not return

    @contextlib.contextmanager
    def fail_together(self):
        """An exception on one rank ends the whole job: the rank prints one line
        `caffelite: error: rank R of N: ...` (and a traceback for a bug) and aborts with exit
        status 2 (a CaffeliteError or a missing file), 130 (Ctrl-C twice) or 1. Outside MPI:
        no effect."""
        if self.size == 1:
            yield
            return
        try:
            yield
        except SystemExit as exc:
            if exc.code in (0, None):
                raise
            self._fail(f"exited with status {exc.code}", exc.code if isinstance(exc.code, int)
                       else 1)
        except CaffeliteError as exc:
            self._fail(str(exc), 2)
        except FileNotFoundError as exc:  # as the CLI reports it in one process
            self._fail(f"{exc.filename or exc}: no such file", 2)
        except KeyboardInterrupt:
            self._fail("interrupted", 130)
        except BaseException as exc:  # a bug: show where, as a single process would
            traceback.print_exc()
            self._fail(f"{type(exc).__name__}: {exc}", 1)

    def _fail(self, message, code):
        if not self.is_root:
            # An error every rank meets at once (a NaN loss after the allreduce) is printed by
            # rank 0 alone: it aborts the job before the others get to print.
            time.sleep(1.0)
        line = " ".join(str(message).split("\n"))
        sys.stderr.write(f"caffelite: error: rank {self.rank} of {self.size}: {line}\n")
        self.abort(code)


_yield = getattr(os, "sched_yield", lambda: None)
_world = {}


def world():
    """This process's World (found once): the MPI world under a launcher, else size 1."""
    if "world" not in _world:
        _world["world"] = _find_world()
    return _world["world"]


def _find_world():
    if launched_size() == 1:
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ParallelError(
            f"this process was started by an MPI launcher ({launcher_name()}) but mpi4py is "
            f"not installed: pip install \"caffelite[mpi]\" (or set CAFFELITE_MPI=0 to train "
            f"in each process on its own)") from None
    comm = MPI.COMM_WORLD
    return World(comm) if comm.Get_size() > 1 else World()


def launcher_name():
    names = [name for name in LAUNCHER_SIZE_VARIABLES if name in os.environ]
    return ", ".join(names) or "CAFFELITE_MPI=1"


def solver_count():
    """How many processes train together: the MPI world's size (1 without mpiexec)."""
    return world().size


def solver_rank():
    """This process's rank in the MPI world (0 without mpiexec)."""
    return world().rank
