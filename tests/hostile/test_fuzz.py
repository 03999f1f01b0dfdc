"""Property-based fuzzing: mutated example configs and small binaries either work or raise a
CaffeliteError, never another exception, a crash or a hang.

Each case runs in a spawned worker (fuzz_worker.py) with an address-space limit and a timeout;
a hang or crash restarts the worker and fails the case. The default run is short; CI=true
runs many more examples.
"""
import glob
import multiprocessing
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLES, LENET_BVLC, ROOT
from tests.hostile import fuzz_mutations as fm
from tests.hostile import fuzz_worker as fw

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLES_PER_TEST = 1000 if CI else 40
CASE_TIMEOUT = 60  # seconds; a shared machine can be slow, a hang is forever
HEADROOM = 3 * 2**30  # the worker's address space beyond its imports

CONFIG_ROOTS = [str(ROOT / "configs")] + ([str(EXAMPLES)] if EXAMPLES.is_dir() else [])
CONFIGS = sorted(p for root in CONFIG_ROOTS for p in glob.glob(f"{root}/**/*", recursive=True)
                 if p.endswith((".prototxt", ".yaml", ".yml", ".json")))

TINY_NET = """name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 2 dim: 6 dim: 6 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { kernel_size: 2
  stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


class Worker:
    """A spawned fuzz_worker.serve process; restarted after a hang or a crash."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.process = None
        self.start()

    def start(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        saved = dict(os.environ)
        os.environ.update(CAFFELITE_MAX_BLOB_BYTES=str(256 * 2**20), CAFFELITE_NUM_THREADS="1")
        try:
            self.process = ctx.Process(target=fw.serve, daemon=True,
                                       args=(child, self.workdir, CONFIG_ROOTS, HEADROOM))
            self.process.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        child.close()
        if not self.conn.poll(300):
            raise RuntimeError("the fuzz worker did not start")
        assert self.conn.recv()[0] == "ready"

    def stop(self):
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(10)

    def run(self, case, timeout=CASE_TIMEOUT):
        try:
            self.conn.send(case)
            if self.conn.poll(timeout):
                return self.conn.recv()
            outcome = ("hang", f"no answer within {timeout} s")
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.process.join(10)
            outcome = ("crash", f"the worker died (exit code {self.process.exitcode})")
        self.stop()
        self.start()
        return outcome


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(str(tmp_path_factory.mktemp("fuzz")))
    yield w
    try:
        w.conn.send(None)
    except OSError:
        pass
    w.stop()


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    """Small seeds: a tiny net's .caffemodel and .solverstate, a mean .binaryproto, and the
    BVLC LeNet snapshot when ../shared has it."""
    import caffelite
    from caffelite.io import write_binaryproto

    folder = tmp_path_factory.mktemp("seeds")
    net = folder / "tiny.prototxt"
    net.write_text(TINY_NET)
    solver = folder / "tiny_solver.prototxt"
    solver.write_text(f'net: "{net}"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 2\n'
                      f'snapshot_prefix: "{folder}/tiny"\nrandom_seed: 1\n')
    s = caffelite.get_solver(str(solver))
    s.step(2)
    s.snapshot()
    mean = folder / "mean.binaryproto"
    write_binaryproto(np.random.default_rng(0).normal(size=(1, 2, 6, 6)), str(mean))
    seeds = {"caffemodel": [(folder / "tiny_iter_2.caffemodel", net)],
             "solverstate": [(folder / "tiny_iter_2.solverstate", solver)],
             "binaryproto": [(mean, None)]}
    if LENET_BVLC.is_dir():
        seeds["caffemodel"].append((LENET_BVLC / "lenet_iter_5000.caffemodel",
                                    LENET_BVLC / "lenet.prototxt"))
    return seeds


def _check(outcome, description):
    kind, detail = outcome
    assert kind in ("ok", "clean"), f"{description}\n{kind}: {detail}"


def config_case(path, seed, count, structural, train):
    """The mutated text of the config at path (a pure function of the arguments)."""
    from caffelite import layers  # noqa: F401  (registers every type)
    from caffelite.formats.config import (
        config_format,
        config_kind,
        format_message,
        parse_net_text,
        parse_solver_text,
    )
    from caffelite.registry import LAYERS

    rnd = random.Random(seed)
    text = Path(path).read_text()
    fmt = config_format(path)
    if config_kind(text, fmt) == "net":  # as the worker's copy of the tree has it
        text = format_message(fw.prepare_net(parse_net_text(text, path)), fmt)
    if structural:
        if config_kind(text, fmt) == "solver":
            message = parse_solver_text(text, path, upgrade=False)
            fm.mutate_solver(message, rnd, count)
        else:
            message = parse_net_text(text, path)
            fm.mutate_net(message, rnd, count, sorted(LAYERS.names()))
        text = format_message(message, fmt)
    else:
        text = fm.mutate_text(text, rnd, count)
    return {"kind": "config", "seed_path": path, "payload": text, "train": train}


@pytest.mark.timeout(1200 if CI else 300)
@settings(max_examples=EXAMPLES_PER_TEST, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(index=st.integers(0, max(0, len(CONFIGS) - 1)), seed=st.integers(0, 2**32 - 1),
       count=st.integers(1, 4), structural=st.booleans(), train=st.booleans())
def test_mutated_configs(worker, index, seed, count, structural, train):
    case = config_case(CONFIGS[index], seed, count, structural, train)
    _check(worker.run(case), f"{CONFIGS[index]} seed {seed} count {count} structural "
                             f"{structural} train {train}")


def template_case(seed, count, train):
    """One layer of a random type on Input blobs of random shapes, as prototxt."""
    from caffelite import layers  # noqa: F401  (registers every type)
    from caffelite.formats.config import format_message
    from caffelite.registry import LAYERS

    types = sorted(set(LAYERS.names()) - {"Python"})  # Python needs a module: not a template
    net = fm.template_net(random.Random(seed), types, count)
    return {"kind": "config", "seed_path": "", "payload": format_message(net), "train": train,
            "fill": True}


@pytest.mark.timeout(1200 if CI else 300)
@settings(max_examples=EXAMPLES_PER_TEST, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 3), train=st.booleans())
def test_layer_templates(worker, seed, count, train):
    case = template_case(seed, count, train)
    _check(worker.run(case), f"template seed {seed} count {count} train {train}\n"
                             f"{case['payload']}")


@pytest.mark.timeout(1200 if CI else 300)
@settings(max_examples=EXAMPLES_PER_TEST, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["caffemodel", "solverstate", "binaryproto"]),
       pick=st.integers(0, 10), seed=st.integers(0, 2**32 - 1), count=st.integers(1, 3),
       structural=st.booleans())
def test_mutated_binaries(worker, binaries, kind, pick, seed, count, structural):
    data = binary_case(binaries, kind, pick, seed, count, structural)
    path, companion = binaries[kind][pick % len(binaries[kind])]
    case = {"kind": kind, "seed_path": str(path), "payload": data, "net": str(companion),
            "solver": str(companion)}
    _check(worker.run(case), f"{kind} {path} seed {seed} count {count} structural "
                             f"{structural}")


def binary_case(binaries, kind, pick, seed, count, structural):
    """The mutated bytes of a seed binary (a pure function of the arguments)."""
    from caffelite.proto import caffelite_pb2 as pb

    path = binaries[kind][pick % len(binaries[kind])][0]
    data, rnd = Path(path).read_bytes(), random.Random(seed)
    if structural:
        message_type = {"caffemodel": pb.NetParameter, "solverstate": pb.SolverState,
                        "binaryproto": pb.BlobProto}[kind]
        return fm.mutate_proto(data, message_type, rnd, count)
    return fm.mutate_bytes(data, rnd, count)


BEHAVIOUR = """
import os, time
import caffelite

class Misbehave(caffelite.Layer):
    def setup(self, bottom, top):
        pass
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)
    def forward(self, bottom, top):
        if self.param_str == "raise":
            raise ZeroDivisionError("a bug")
        if self.param_str == "hang":
            time.sleep(3600)
        if self.param_str == "crash":
            os._exit(3)
"""


@pytest.mark.timeout(120)
def test_the_worker_reports_bugs_hangs_and_crashes(worker, tmp_path):
    """The harness itself: a non-caffelite exception, a hang and a crash are each reported
    (and the worker comes back for the next case)."""
    module = tmp_path / "misbehave.py"
    module.write_text(BEHAVIOUR)

    def case(behaviour):
        text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
                f'layer {{ name: "m" type: "Python" bottom: "x" top: "y" python_param {{ '
                f'module: "{module}" layer: "Misbehave" param_str: "{behaviour}" }} }}')
        return {"kind": "config", "seed_path": "", "payload": text, "train": False}

    assert worker.run(case("fine"))[0] == "ok"
    kind, detail = worker.run(case("raise"))
    assert kind == "bug" and "ZeroDivisionError: a bug" in detail
    assert worker.run(case("hang"), timeout=5)[0] == "hang"
    assert worker.run(case("crash"))[0] == "crash"
    assert worker.run(case("fine"))[0] == "ok"


def test_configs_were_found():
    assert any(p.startswith(str(ROOT / "configs")) for p in CONFIGS)
