"""Running `caffelite train` under a real mpiexec (or alone) in a subprocess, for the tests."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny.yaml"
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                      "PMIX_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "CAFFELITE_MPI")


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's) or on PATH; skips when absent."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install "
                                         "\"caffelite[mpi]\")")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec (pip install \"caffelite[mpi]\" brings MPICH's)")
    return found


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    paths = [str(ROOT), str(HERE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(paths), CAFFELITE_NUM_THREADS="1",
               CAFFELITE_MPI_TIMEOUT="60")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def write_config(directory, name="t.yaml", batch=8, test_batch=10, extra_layers="", **fields):
    """tiny.yaml with per-rank batch sizes and top-level fields replaced (or added)."""
    text = TINY.read_text()
    text = text.replace("batch_size: 8}", f"batch_size: {batch}}}")
    text = text.replace("batch_size: 10}", f"batch_size: {test_batch}}}")
    for key, value in fields.items():
        line = f"{key}: {value}"
        text, n = re.subn(rf"^{key}: .*$", line, text, flags=re.M)
        if not n:
            text = line + "\n" + text
    if extra_layers:
        text = text.replace("    - name: conv1\n", extra_layers + "    - name: conv1\n", 1)
    path = Path(directory) / name
    path.write_text(text)
    return path


def command(config, ranks=None, args=()):
    train = [sys.executable, "-m", "caffelite", "train", str(config), *map(str, args)]
    return train if ranks is None else [mpiexec(), "-n", str(ranks)] + train


def start(cwd, config, ranks=None, args=(), **env):
    """Popen of a training run in its own process group (so a timeout can end every rank);
    its output goes to files (a pipe nobody reads would stall a long run)."""
    outputs = [open(Path(cwd) / name, "w") for name in ("stdout.txt", "stderr.txt")]
    with outputs[0], outputs[1]:
        proc = subprocess.Popen(command(config, ranks, args), cwd=cwd, env=environment(**env),
                                stdout=outputs[0], stderr=outputs[1], start_new_session=True)
    proc.outputs = [Path(f.name) for f in outputs]
    return proc


def finish(proc, timeout):
    """(returncode, stdout, stderr); kills the whole group and fails on a timeout."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
        pytest.fail(f"the run did not end in {timeout} s:\n"
                    f"{proc.outputs[1].read_text()[-3000:]}")
    out, err = (path.read_text() for path in proc.outputs)
    return proc.returncode, out, err


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def train(cwd, config, ranks=None, args=(), timeout=120, check=True, **env):
    code, out, err = finish(start(cwd, config, ranks, args, **env), timeout)
    if check and code != 0:
        pytest.fail(f"exit {code}:\n{err[-3000:]}")
    return code, out, err


def wait_for(predicate, timeout, what, proc=None):
    """Poll predicate(); fail on the timeout, or at once when proc (a run) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n"
                        f"{proc.outputs[1].read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def weights(path):
    """Every blob of a .caffemodel, flattened into one float64 array."""
    from caffelite.formats.binary import load_caffemodel, read_blob_array

    model = load_caffemodel(str(path))
    return np.concatenate([read_blob_array(b).ravel().astype(np.float64)
                           for layer in model.layer for b in layer.blobs])


def relative_difference(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
