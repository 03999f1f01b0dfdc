"""The fuzz test's worker: a spawned interpreter that runs caffelite on mutated files.

It has an address-space limit, so a case that allocates without bound fails inside it; the
parent (test_fuzz.py) kills and restarts it after a timeout, so a hang is reported rather
than stalling the run. Seed configs are copied and prepared (prepare_net) so that they run
without Caffe's databases.
"""
import os
import shutil
import traceback

# ---- seeds that run here ---------------------------------------------------------------------

_READERS = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData")


def prepare_net(net):
    """A seed net that runs without Caffe's databases, small and quick: every data reader
    becomes a Data layer on the bundled digits (batch <= 4), Input/DummyData shapes shrink to
    batch 2 and sides <= 48. Mutations then reach the layers instead of the missing files."""
    for lp in list(net.layer):
        if lp.type in _READERS:
            batch = 4
            for param in ("data_param", "image_data_param", "hdf5_data_param",
                          "window_data_param", "memory_data_param"):
                if lp.HasField(param):
                    batch = min(max(getattr(lp, param).batch_size, 1), 4)
                    lp.ClearField(param)
            lp.type = "Data"
            test = any(rule.phase == 1 for rule in lp.include)
            lp.data_param.source = f"caffelite://mnist10k/{'test' if test else 'train'}"
            lp.data_param.batch_size = batch
            lp.transform_param.ClearField("mean_file")
            if lp.transform_param.crop_size > 24:
                lp.transform_param.crop_size = 24
            del lp.top[2:]
        for shape in list(lp.input_param.shape) + list(lp.dummy_data_param.shape):
            dims = [min(d, 2) if i == 0 else min(d, 48) for i, d in enumerate(shape.dim)]
            shape.ClearField("dim")
            shape.dim.extend(dims)
    return net


def prepare_tree(root):
    """prepare_net every net config under root, in place (the worker's copies)."""
    from caffelite.errors import CaffeliteError
    from caffelite.formats.config import (
        config_format,
        config_kind,
        format_message,
        parse_net_text,
    )

    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            fmt = config_format(path)
            if not name.endswith((".prototxt", ".yaml", ".yml", ".json")):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            try:
                if config_kind(text, fmt) != "net":
                    continue
                prepared = format_message(prepare_net(parse_net_text(text, path)), fmt)
            except CaffeliteError:
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(prepared)


# ---- the worker ------------------------------------------------------------------------------

def _address_space():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def serve(conn, workdir, roots, headroom_bytes):
    """Run cases from conn until None: each reply is ("ok" | "clean" | "bug", detail). The
    address space is limited to what the imports took plus headroom_bytes."""
    import caffelite  # noqa: F401  (imported before the limit: the kernels' compiler too)
    import caffelite.layers  # noqa: F401
    import caffelite.tools.inspect  # noqa: F401

    size = _address_space()
    try:
        import resource

        if size:
            limit = size + headroom_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    workdir = os.path.join(workdir, f"worker{os.getpid()}")  # a restarted worker starts afresh
    os.makedirs(workdir)
    os.chdir(workdir)
    copies = {}
    for root in roots:  # configs name their neighbours by relative paths: work on copies
        copy = os.path.join(workdir, os.path.basename(root))  # "examples/mnist/..." resolves
        shutil.copytree(root, copy)
        prepare_tree(copy)
        copies[root] = copy
    conn.send(("ready", str(size)))
    while True:
        case = conn.recv()
        if case is None:
            return
        try:
            detail = run_case(case, copies)
            conn.send(("ok", detail))
        except Exception as exc:  # classified here; the parent asserts on the kind
            from caffelite.errors import CaffeliteError

            if isinstance(exc, CaffeliteError):
                conn.send(("clean", f"{type(exc).__name__}: {exc}"))
            else:
                conn.send(("bug", "".join(traceback.format_exception(exc))[-4000:]))


def _place(case, copies):
    """The path to write a case's file: beside its seed's copy, so relative paths resolve."""
    seed = case["seed_path"]
    for root, copy in copies.items():
        if seed and seed.startswith(root + os.sep):
            folder = os.path.dirname(os.path.join(copy, os.path.relpath(seed, root)))
            break
    else:
        folder = os.getcwd()
    return os.path.join(folder, "fuzz_" + os.path.basename(seed))


class CliBug(Exception):
    """A CLI command that ended neither with exit 0 nor with its one-line error (exit 2)."""


def _cli_on(path):
    """inspect, convert (to each format) and draw on a config: exit 0 or the clean exit 2."""
    import sys

    from click.testing import CliRunner

    from caffelite.cli import main

    runner = CliRunner()
    base = os.path.splitext(path)[0]
    for args in (["inspect", path], ["convert", path, base + "_out.yaml"],
                 ["convert", path, base + "_out.json"],
                 ["convert", path, base + "_out.prototxt"], ["draw", path, "-o", base + ".dot"]):
        result = runner.invoke(main, args)
        if result.exit_code not in (0, 2) or "Traceback" in result.output:
            detail = "".join(traceback.format_exception(*result.exc_info)) \
                if result.exc_info else result.output
            raise CliBug(f"caffelite {' '.join(args)} -> exit {result.exit_code}\n{detail}")
        if result.exit_code == 2 and not result.output.startswith("caffelite: error:"):
            raise CliBug(f"caffelite {' '.join(args)}: {result.output!r}")
        if args[0] == "convert" and result.exit_code == 0:
            _same_config(path, args[2])
    sys.stdout.flush()


def _same_config(src, dst):
    """What convert wrote reads back as what it read (lossless in every format)."""
    from caffelite.formats import config

    def read(path):
        text = config.read_text(path)
        fmt = config.config_format(path)
        kind = config.config_kind(text, fmt)
        parse = config.parse_solver_text if kind == "solver" else config.parse_net_text
        return parse(text, filename=path, fmt=fmt).SerializePartialToString(deterministic=True)
    if read(src) != read(dst):
        raise CliBug(f"caffelite convert {src} {dst}: the output reads back differently")


def run_case(case, copies):
    import caffelite
    from caffelite.formats.config import config_format, config_kind

    path = _place(case, copies)
    mode = "wb" if isinstance(case["payload"], bytes) else "w"
    with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8",
                                                     "errors": "surrogatepass"})) as f:
        f.write(case["payload"])
    kind = case["kind"]
    if kind == "config":
        _cli_on(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if config_kind(text, config_format(path)) == "solver":
            solver = caffelite.get_solver(path)
            # Two training steps, without the test nets, snapshots or a huge iter_size
            # (long, not wrong): the update rule and the lr policy on the mutated numbers.
            p = solver.param
            p.test_interval, p.snapshot, p.iter_size = 0, 0, min(p.iter_size, 2)
            solver.step(2)
            return f"solver stepped, rate {solver.get_learning_rate()}"
        phase = caffelite.TRAIN if case["train"] else caffelite.TEST
        net = caffelite.Net(path, phase)
        if case.get("fill"):  # small integers: valid labels, indices and counts mostly
            import numpy as np

            rng = np.random.default_rng(0)
            for name in net.inputs:
                blob = net.blobs[name]
                blob.data[...] = rng.integers(0, 3, size=blob.shape)
        net.forward()
        if case["train"]:
            net.backward()
        return f"net of {len(net.layers)} layers ran"
    from caffelite.tools.inspect import inspect_file

    inspect_file(path)
    if kind == "caffemodel":
        from caffelite.formats.binary import load_caffemodel

        load_caffemodel(path)
        net = caffelite.Net(case["net"], caffelite.TEST)
        net.copy_from(path)
        return "weights loaded"
    if kind == "solverstate":
        solver = caffelite.get_solver(case["solver"])
        solver.restore(path)
        return f"restored at iter {solver.iter}"
    from caffelite.io import read_binaryproto

    return f"blob of shape {read_binaryproto(path).shape}"

