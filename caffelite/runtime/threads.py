"""How many threads caffelite splits work over, and waiting on a thread through a Ctrl-C."""
import os


def _default_threads():
    for name in ("CAFFELITE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_num_threads = _default_threads()


def num_threads():
    """How many threads layers split their batch work over (CAFFELITE_NUM_THREADS)."""
    return _num_threads


def set_num_threads(count):
    """Threads for layer work (like torch.set_num_threads). With more than one, each BLAS
    call inside a layer runs on one thread; the layers split the batch among the threads."""
    global _num_threads
    _num_threads = max(1, int(count))


def wait_out(wait):
    """wait() to its end even through a Ctrl-C, which is raised afterwards: a pool thread's
    call must not outlive the pass that handed it over."""
    interrupted = None
    while True:
        try:
            wait()
            break
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
