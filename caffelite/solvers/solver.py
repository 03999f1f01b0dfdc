"""Caffe's solver loop: per iteration clear diffs, test, iter_size × forward/backward, clip,
normalise, regularise, w -= ComputeUpdateValue(rate·lr_mult), ++iter, snapshot."""
import logging
import math
import os
import threading
import time
from collections import OrderedDict

import numpy as np

from ..errors import SolverError
from ..proto import caffelite_pb2 as pb
from ..random import set_random_seed
from ..registry import SOLVERS
from ..runtime import flush_denormals, get_array_module, parallel, to_numpy
from . import lr_policy, sidecar, storage
from . import snapshot as snap
from .build import NetBuilder, load_param

logger = logging.getLogger("caffelite")

ACTIONS = ("none", "stop", "snapshot")
_SCRATCH_LOCK = threading.Lock()
# The update takes a param through all its steps (normalize, regularize, the update value,
# data −= diff) this many values at a time, so a chunk's arrays stay in the core's cache from
# one step to the next; smaller chunks cost more in calls than they save (LeNet's 431k
# values: 1.2 ms whole, 1.1 ms in chunks of 2^17, 1.75 ms in chunks of 2^13, one thread).
UPDATE_CHUNK = 1 << 17
# A param is split among the threads when each thread gets this many values (LeNet, two
# threads: 1.2 -> 0.8 ms).
UPDATE_SPLIT_MIN = 1 << 16


def _g(value):
    """A number as Caffe's ostream prints it (6 significant digits)."""
    return f"{float(value):g}"


class Solver:
    """Owns the train net and the test nets and runs Caffe's Step/Solve/Test/Snapshot/Restore.

    `Solver(path_or_param)` picks the subclass named by `type` (SGD, Nesterov, AdaGrad, RMSProp,
    AdaDelta, Adam); a subclass (`AdamSolver(path)`) builds that solver. pycaffe's surface:
    `.net`, `.test_nets`, `.iter`, `.step(n)`, `.solve(resume=None)`, `.snapshot()`,
    `.restore(path)`, `.add_callback`. `solver_file` names the file a message was read from, so
    relative paths and the default snapshot_prefix follow Caffe's rules.

    Subclasses set `type`, `history_per_param` (history is `history_per_param × N` arrays, block
    by block, as Caffe lays it out) and implement `compute_update_value(param_id, rate, part)`,
    which turns values `part` of `learnable_params[param_id].diff` into the step that is then
    subtracted from the data (`self.part(array, part)` gives those values of a param-shaped
    array).

    Callbacks (objects passed to `add_callback`) may define `on_display(iter, loss, outputs,
    lr)`, `on_test(iter, results)` (one {output: mean} per test net), `on_snapshot(paths)`, and
    Caffe's `on_start()` / `on_gradients_ready()`. `set_action_function(fn)`: fn() returns
    "none", "stop" or "snapshot", checked after each update and inside the test loop (signals).

    Two callback methods return a value the solver goes on with (data-parallel training,
    caffelite/parallel, averages across processes there): `on_gradients(loss)` after the
    iteration's backward passes and before anything reads the gradients or the loss, and
    `on_outputs(values)` on test sums and the final forward's loss; `on_action(action)` may
    replace the action function's answer. `writes_snapshots = False` makes snapshot() write
    nothing (the ranks other than 0).
    """

    type = None
    history_per_param = 1
    writes_snapshots = True

    def __new__(cls, param=None, *args, **kwargs):
        if cls is Solver and param is not None:
            loaded = load_param(param, kwargs.get("solver_file"))
            cls = solver_class(loaded[0].type, loaded[2])
            self = super().__new__(cls)
            self._preloaded = loaded
            return self
        return super().__new__(cls)

    def __init__(self, param, *, solver_file=None, dtype=np.float32):
        loaded = self.__dict__.pop("_preloaded", None) or load_param(param, solver_file)
        self.param, self.solver_file, self.source = loaded
        param = self.param
        if self.type is not None and param.type != self.type:
            # pycaffe's SGDSolver(path) builds an SGD solver whatever the file says; say so.
            logger.warning("%s: type is '%s' but a %s solver was requested; training with %s",
                           self.source, param.type, self.type, self.type)
        self.check_param(param)
        if param.HasField("solver_mode") and param.solver_mode == pb.SolverParameter.GPU:
            from ..pycaffe.state import warn_no_gpu

            warn_no_gpu()  # Caffe's configs often say GPU: run them on the CPU, saying so once
        self.dtype = np.dtype(dtype)
        self.callbacks = []
        self.action_function = None
        self.requested_early_exit = False
        self.iter = 0
        self.current_step = 0
        self.losses = []
        self.smoothed_loss = 0.0
        self._loss_start_iter = 0
        self._keep_losses = False  # set by restore(): the next step() continues the ring buffer
        self.test_results = []

        if param.snapshot > 0 and not param.HasField("snapshot_prefix"):
            raise SolverError(f"{self.source}: snapshot is {param.snapshot} but snapshot_prefix "
                              f"is not set")
        if param.snapshot > 0 or param.snapshot_after_train:
            snap.check_snapshot_prefix(param.snapshot_prefix)
        seed = param.random_seed if param.random_seed >= 0 else None
        if seed is not None:
            set_random_seed(seed)  # fillers that fall back to the default generator
        builder = NetBuilder(param, self.solver_file, self.source, seed, self.dtype)
        self.net = builder.train_net()
        self.test_nets = builder.test_nets()
        self.learnable_params = list(self.net.learnable_params)
        self.xp = get_array_module(self.learnable_params[0].data) if self.learnable_params else np
        self.history = [self.xp.zeros_like(p.data) for _ in range(self.history_per_param)
                        for p in self.learnable_params]

    # -- configuration --------------------------------------------------------------------
    def check_param(self, param):
        """Caffe's CHECKs on the solver parameters, as SolverErrors at construction."""
        where = self.source
        if param.average_loss < 1:
            raise SolverError(f"{where}: average_loss must be >= 1, got {param.average_loss}")
        if param.iter_size < 1:
            raise SolverError(f"{where}: iter_size must be >= 1, got {param.iter_size}")
        if any(n <= 0 for n in param.test_iter):
            raise SolverError(f"{where}: every test_iter must be > 0, got {list(param.test_iter)}")
        if param.regularization_type not in ("L1", "L2"):
            raise SolverError(f"{where}: unknown regularization_type "
                              f"'{param.regularization_type}'; use 'L2' or 'L1'")
        if param.snapshot_format == pb.SolverParameter.HDF5:
            snap.check_hdf5(where)
        lr_policy.check_lr_policy(param, where)

    def require_zero_momentum(self, param):
        if param.momentum != 0:
            raise SolverError(f"{self.source}: momentum cannot be used with {self.type} (got "
                              f"{param.momentum:g}); remove it or set it to 0")

    # -- callbacks and actions ------------------------------------------------------------
    def add_callback(self, callback, on_gradients_ready=None):
        """An object with any of on_display/on_test/on_snapshot/on_start/on_gradients_ready,
        or pycaffe's form add_callback(on_start, on_gradients_ready) with two functions."""
        if on_gradients_ready is not None or callable(callback):
            callback = _FunctionCallback(callback, on_gradients_ready)
        self.callbacks.append(callback)

    def set_action_function(self, function):
        """function() -> 'none' | 'stop' | 'snapshot' (Caffe's SetActionFunction, for signals)."""
        self.action_function = function

    def _notify(self, event, *args):
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is not None:
                method(*args)

    def _reduce(self, event, value):
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is not None:
                value = method(value)
        return value

    def _requested_action(self):
        action = (self.action_function() or "none") if self.action_function else "none"
        if action not in ACTIONS:
            raise SolverError(f"unknown solver action '{action}'; use one of {ACTIONS}")
        return self._reduce("on_action", action)

    # -- the loop -------------------------------------------------------------------------
    def step(self, iters):
        """Run `iters` iterations (Caffe's Solver::Step)."""
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + int(iters)
        if self._keep_losses:  # resumed from a sidecar: the smoothed loss goes on as before
            start_iter = self._loss_start_iter
            self._keep_losses = False
        else:
            self.losses, self.smoothed_loss = [], 0.0
        self._loss_start_iter = start_iter
        timer, iterations_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self.requested_early_exit:
                    break
            self._notify("on_start")
            display = p.display and self.iter % p.display == 0
            # Caffe's set_debug_info: per-layer statistics on display iterations only
            self.net.debug_info = bool(display and p.debug_info)
            loss = 0.0
            for _ in range(p.iter_size):
                loss += self.net.forward_backward()
            loss /= p.iter_size
            loss = self._reduce("on_gradients", loss)
            if not math.isfinite(loss):
                raise SolverError(f"the loss became {loss} at iteration {self.iter}; training "
                                  f"stopped and nothing was saved over earlier snapshots (lower "
                                  f"base_lr, now {_g(p.base_lr)}, or set clip_gradients)")
            self._update_smoothed_loss(loss, start_iter)
            rate = self.get_learning_rate()
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iterations_last) / (lapse or 1.0)
                logger.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s", self.iter,
                            _g(per_s), _g(lapse), p.display, _g(self.smoothed_loss))
                timer, iterations_last = time.perf_counter(), self.iter
                outputs = self._log_outputs(self.net, "Train", None)
                logger.info("Iteration %d, lr = %s", self.iter, _g(rate))
                self._notify("on_display", self.iter, self.smoothed_loss, outputs, rate)
            self._notify("on_gradients_ready")
            self.apply_update(rate)
            request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request == "snapshot":
                self.snapshot()
            if request == "stop":
                self.requested_early_exit = True
                break

    def solve(self, resume=None):
        """Restore (if resuming), step to max_iter, final snapshot, display and test."""
        p = self.param
        logger.info("Solving %s", self.net.name)
        logger.info("Learning Rate Policy: %s", p.lr_policy)
        storage.remove_stale_temporaries(p.snapshot_prefix)
        self.requested_early_exit = False
        if resume is not None:
            logger.info("Restoring previous solver status from %s", resume)
            self.restore(resume)
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            logger.info("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            # A forward-only pass to log the loss of the final weights (Caffe's Solve).
            loss = self._reduce("on_outputs", self.net.forward_prefilled())
            self._update_smoothed_loss(loss, self._loss_start_iter)
            logger.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        logger.info("Optimization Done.")

    def _update_smoothed_loss(self, loss, start_iter):
        """Caffe's ring buffer of the last average_loss losses; the running mean while filling."""
        average = self.param.average_loss
        if len(self.losses) < average:
            self.losses.append(loss)
            size = len(self.losses)
            self.smoothed_loss = (self.smoothed_loss * (size - 1) + loss) / size
        else:
            idx = (self.iter - start_iter) % average
            self.smoothed_loss += (loss - self.losses[idx]) / average
            self.losses[idx] = loss

    def _log_outputs(self, net, kind, scores):
        """Log `<kind> net output #k: name = v (* w = l loss)` per output element; returns
        {name: value} (a float for one element, else an array)."""
        results, index = OrderedDict(), 0
        for name in net.outputs:
            values = to_numpy(net.blobs[name].data) if scores is None else scores[name]
            values = np.asarray(values, dtype=np.float64)
            weight = net.blob_loss_weights.get(name, 0.0)
            for value in values.ravel():
                loss = f" (* {_g(weight)} = {_g(weight * value)} loss)" if weight else ""
                logger.info("    %s net output #%d: %s = %s%s", kind, index, name, _g(value), loss)
                index += 1
            results[name] = float(values.ravel()[0]) if values.size == 1 else values.copy()
        return results

    # -- testing --------------------------------------------------------------------------
    def test_all(self):
        """Test every test net (stops early if a stop was requested); calls on_test."""
        self.test_results = []
        for k in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            result = self.test(k)
            if result is not None:
                self.test_results.append(result)
        if self.test_results:
            self._notify("on_test", self.iter, self.test_results)
        return self.test_results

    def test(self, test_net_id=0):
        """test_iter[k] forwards of test net k on the current weights; logs and returns the
        mean of every output element (None when a stop request interrupted it)."""
        logger.info("Iteration %d, Testing net (#%d)", self.iter, test_net_id)
        net = self.test_nets[test_net_id]
        net.share_trained_layers_with(self.net)
        iterations = self.param.test_iter[test_net_id]
        sums, loss = OrderedDict(), 0.0
        for _ in range(iterations):
            request = self._requested_action()
            while request != "none":
                if request == "snapshot":
                    self.snapshot()
                else:
                    self.requested_early_exit = True
                request = self._requested_action()
            if self.requested_early_exit:
                break
            loss += net.forward_prefilled()
            for name in net.outputs:
                value = to_numpy(net.blobs[name].data).astype(np.float64)
                sums[name] = sums[name] + value if name in sums else value.copy()
        if self.requested_early_exit:
            logger.info("Test interrupted.")
            return None
        loss, sums = self._reduce("on_outputs", (loss, sums))
        if self.param.test_compute_loss:
            logger.info("Test loss: %s", _g(loss / iterations))
        means = OrderedDict((name, total / iterations) for name, total in sums.items())
        return self._log_outputs(net, "Test", means)

    # -- the update -----------------------------------------------------------------------
    def get_learning_rate(self):
        """The rate for update `iter` (advances current_step for step/multistep, as Caffe)."""
        rate, step = lr_policy.learning_rate(self.param, self.iter, self.current_step)
        if self.param.lr_policy == "multistep" and step != self.current_step:
            logger.info("MultiStep Status: Iteration %d, step = %d", self.iter, step)
        self.current_step = step
        return float(np.float32(rate))  # Caffe's rate is a Dtype

    def apply_update(self, rate=None):
        """Clip, then per param Normalize, Regularize, ComputeUpdateValue and data −= diff
        (Caffe's Net::Update); ++iter."""
        if rate is None:
            rate = self.get_learning_rate()
        with flush_denormals():  # as in the net's passes (runtime/fpmode.py)
            self.clip_gradients()
            for param_id in range(len(self.learnable_params)):
                self.update_param(param_id, rate)
        self.iter += 1

    def update_param(self, param_id, rate):
        """Update one param a chunk of values at a time, the chunks split among the threads.
        Every step is elementwise, so neither changes a value."""
        blob = self.learnable_params[param_id]
        data, diff = blob.data.reshape(-1), blob.diff.reshape(-1)
        chunk = UPDATE_CHUNK if self.xp is np else data.size

        def run(start, stop):
            for first in range(start, stop, chunk):
                part = slice(first, min(stop, first + chunk))
                self.normalize(param_id, part)
                self.regularize(param_id, part)
                self.compute_update_value(param_id, rate, part)
                data[part] -= diff[part]
        if self.xp is np:
            parallel(run, data.size, min_items=UPDATE_SPLIT_MIN)
        else:
            run(0, data.size)

    @staticmethod
    def part(array, part):
        """Values `part` (a slice) of a param-shaped array, flattened: a view."""
        return array.reshape(-1)[part]

    def clip_gradients(self):
        """Scale every diff by clip/‖g‖ when the global L2 norm exceeds clip_gradients (before
        the iter_size normalisation, as Caffe)."""
        clip = self.param.clip_gradients
        if clip < 0:
            return
        sumsq = sum(float(self.xp.vdot(p.diff.ravel(), p.diff.ravel()))
                    for p in self.learnable_params)
        norm = math.sqrt(sumsq)
        if norm > clip:
            scale = clip / norm
            logger.info("Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale "
                        "factor %s", _g(norm), _g(clip), _g(scale))
            for p in self.learnable_params:
                p.diff[...] *= p.diff.dtype.type(scale)

    def normalize(self, param_id, part=slice(None)):
        """diff *= 1/iter_size (the passes accumulated their gradients)."""
        if self.param.iter_size > 1:
            diff = self.part(self.learnable_params[param_id].diff, part)
            diff *= diff.dtype.type(1.0 / self.param.iter_size)

    def regularize(self, param_id, part=slice(None)):
        """L2: diff += λ·w; L1: diff += λ·sign(w); λ = weight_decay·decay_mult, even at
        lr_mult 0 (Caffe's rule)."""
        blob = self.learnable_params[param_id]
        dt = blob.diff.dtype.type
        local_decay = dt(self.param.weight_decay) * dt(self.net.params_weight_decay[param_id])
        if not local_decay:
            return
        data, diff = self.part(blob.data, part), self.part(blob.diff, part)
        term = self.part(self.scratch(param_id), part)
        if self.param.regularization_type == "L2":
            self.xp.multiply(data, local_decay, out=term)
        else:
            self.xp.multiply(self.xp.sign(data, out=term), local_decay, out=term)
        diff += term

    def scratch(self, param_id):
        """A work array shaped like learnable param `param_id`, kept between iterations."""
        buffers = self.__dict__.setdefault("_scratch", {})
        data = self.learnable_params[param_id].data
        buf = buffers.get(param_id)
        if buf is None or buf.shape != data.shape or buf.dtype != data.dtype:
            with _SCRATCH_LOCK:  # the threads updating parts of one param share its buffer
                buf = buffers.get(param_id)
                if buf is None or buf.shape != data.shape or buf.dtype != data.dtype:
                    buf = buffers[param_id] = self.xp.empty_like(data)
        return buf

    def compute_update_value(self, param_id, rate, part=slice(None)):
        raise NotImplementedError

    # -- snapshots ------------------------------------------------------------------------
    def snapshot(self):
        """Write PREFIX_iter_N.caffemodel, its sidecar and .solverstate; returns both paths."""
        if not self.writes_snapshots:
            return None
        prefix = self.param.snapshot_prefix
        if not prefix:
            logger.warning("%s: snapshot_prefix is not set; snapshots go to the working "
                           "directory as _iter_N.caffemodel (Caffe's rule)", self.source)
        h5 = ".h5" if self.param.snapshot_format == pb.SolverParameter.HDF5 else ""
        model_path = snap.snapshot_filename(prefix, self.iter, ".caffemodel" + h5)
        state_path = snap.snapshot_filename(prefix, self.iter, ".solverstate" + h5)
        kind = "HDF5" if h5 else "binary proto"
        logger.info("Snapshotting to %s file %s", kind, model_path)
        writing = model_path
        try:
            os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)  # snapshot() by hand
            snap.save_caffemodel(self.net, model_path, write_diff=self.param.snapshot_diff)
            logger.info("Snapshotting solver state to %s file %s", kind, state_path)
            # The sidecar goes first: a .solverstate on disk always has its companions.
            writing = sidecar.sidecar_path(state_path)
            sidecar.write_sidecar(state_path, sidecar.sidecar_record(self, model_path))
            writing = state_path
            snap.write_solver_state(state_path, self.iter, model_path,
                                    [to_numpy(h) for h in self.history], self.current_step)
        except OSError as exc:  # disk full, read-only, a directory in the way: one line
            raise storage.write_failed(exc, writing, prefix) from None
        paths = (model_path, state_path)
        self._notify("on_snapshot", paths)
        return paths

    def share_weights(self, net):
        """pycaffe's share_weights: `net` uses this solver's train-net weights (by layer name),
        as the solver's own test nets do."""
        net.share_trained_layers_with(self.net)

    def restore(self, path):
        """Resume from a .solverstate: iter, weights (learned_net, by layer name), current_step,
        history; then, from the sidecar when present, data positions, random state and the
        smoothed loss, so training continues exactly as if it had not stopped."""
        snap.restore_solver(self, str(path))

class _FunctionCallback:
    """pycaffe's add_callback(on_start, on_gradients_ready)."""

    def __init__(self, on_start, on_gradients_ready):
        self.on_start = on_start or (lambda: None)
        self.on_gradients_ready = on_gradients_ready or (lambda: None)


def solver_class(type_name, source="solver"):
    """The registered class of a solver type; SolverError with a did-you-mean otherwise."""
    if type_name not in SOLVERS:
        raise SolverError(f"{source}: unknown solver type '{type_name}'"
                          f"{lr_policy.did_you_mean(type_name, SOLVERS.names())}; the types are "
                          f"{', '.join(SOLVERS.names())}")
    return SOLVERS.get(type_name)
