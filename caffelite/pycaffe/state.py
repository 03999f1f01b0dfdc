"""pycaffe's module-level switches: mode and device, solver count/rank, multiprocess, Timer,
init_log and log. There is one compute backend (NumPy on the CPU), so the GPU calls warn once and
carry on: notebooks written for a GPU run unchanged."""
import logging
import os
import sys
import time
import warnings

logger = logging.getLogger("caffelite")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NO_GPU_MESSAGE = "no GPU backend; running on the CPU"
# solver_count/solver_rank: None until set by hand; then the MPI world's (1 and 0 without
# mpiexec), so pycaffe code sees the data-parallel job it runs in.
_state = {"mode": "CPU", "device": 0, "solver_count": None, "solver_rank": None,
          "multiprocess": False, "warned_gpu": False}


def warn_no_gpu():
    """Say once per process that GPU requests run on the CPU."""
    if not _state["warned_gpu"]:
        _state["warned_gpu"] = True
        # Point at the user's line (set_mode_gpu(), SGDSolver(...)), not at caffelite's own.
        frame, level = sys._getframe(0), 1
        while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frame, level = frame.f_back, level + 1
        warnings.warn(NO_GPU_MESSAGE, RuntimeWarning, stacklevel=level)


def set_mode_cpu():
    """Compute on the CPU with NumPy (the default)."""
    _state["mode"] = "CPU"


def reset_gpu_warning():
    """Let the next GPU request warn again (tests)."""
    _state["warned_gpu"] = False


def set_mode_gpu():
    """Caffe's GPU mode: without a GPU backend this warns once and computes on the CPU."""
    _state["mode"] = "GPU"
    warn_no_gpu()


def set_device(device_id):
    """Caffe's set_device: recorded; without a GPU backend it warns once and changes nothing."""
    _state["device"] = int(device_id)
    warn_no_gpu()


def mode():
    """'CPU' or 'GPU': what was asked for (the work runs on the CPU either way)."""
    return _state["mode"]


def has_nccl():
    """No NCCL in this build (multi-process training goes through MPI instead)."""
    return False


def solver_count():
    if _state["solver_count"] is None:
        from ..parallel.mpi import solver_count as world_count

        return world_count()
    return _state["solver_count"]


def set_solver_count(count):
    count = int(count)
    if count < 1:
        raise ValueError(f"solver_count must be >= 1, got {count}")
    _state["solver_count"] = count


def solver_rank():
    if _state["solver_rank"] is None:
        from ..parallel.mpi import solver_rank as world_rank

        return world_rank()
    return _state["solver_rank"]


def set_solver_rank(rank):
    rank = int(rank)
    if rank < 0:
        raise ValueError(f"solver_rank must be >= 0, got {rank}")
    _state["solver_rank"] = rank


def multiprocess():
    return _state["multiprocess"]


def set_multiprocess(value):
    _state["multiprocess"] = bool(value)


class Timer:
    """pycaffe's Timer: start(), stop(), and `ms`, the milliseconds between them (or until now
    while running)."""

    def __init__(self):
        self._start = None
        self._elapsed = 0.0
        self.running = False

    def start(self):
        self._start = time.perf_counter()
        self.running = True

    def stop(self):
        if self.running:
            self._elapsed = time.perf_counter() - self._start
            self.running = False

    @property
    def ms(self):
        if self.running:
            return (time.perf_counter() - self._start) * 1000.0
        return self._elapsed * 1000.0

    @property
    def seconds(self):
        return self.ms / 1000.0


# glog severities as pycaffe's init_log(level) takes them: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL.
_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}


def init_log(level=0, stderr=True):
    """pycaffe's init_log: log caffelite's messages at glog level `level` and up (0 INFO ..
    3 FATAL) to stderr (or stdout with stderr=False)."""
    if level not in _LEVELS:
        raise ValueError(f"init_log level must be 0 (INFO), 1 (WARNING), 2 (ERROR) or 3 "
                         f"(FATAL), got {level!r}")
    logger.setLevel(_LEVELS[level])
    stream = sys.stderr if stderr else sys.stdout
    for handler in list(logger.handlers):
        if getattr(handler, "_caffelite_init_log", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname).1s%(asctime)s %(message)s",
                                           "%m%d %H:%M:%S"))
    handler._caffelite_init_log = True
    logger.addHandler(handler)


def log(message):
    """pycaffe's log: one INFO line through caffelite's logger."""
    logger.info("%s", message)


class NCCL:
    """pycaffe's NCCL in a build without it (has_nccl() is False): with one solver there is
    nothing to share, so bcast() and add_callback do nothing; with more, it refuses."""

    def __init__(self, solver, uid=b""):
        if solver_count() > 1:
            raise RuntimeError("caffelite has no NCCL: train data-parallel under MPI "
                               "(mpiexec) instead of with pycaffe's NCCL")
        self.solver, self.uid = solver, uid

    @staticmethod
    def new_uid():
        return bytes(os.urandom(128))

    def bcast(self):
        """Broadcast rank 0's weights: nothing to do with a single solver."""
