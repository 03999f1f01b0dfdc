"""The solver's nets (Caffe's InitTrainNet/InitTestNets): the train net from net/net_param/
train_net/train_net_param, test nets from test_net_param, test_net, then the generic net."""
import logging
import os

import numpy as np

from ..errors import SolverError
from ..proto import caffelite_pb2 as pb
from ..random import make_rng

logger = logging.getLogger("caffelite")


def load_param(param, solver_file=None):
    """(SolverParameter copy, solver_file, source name) from a path or a message. With a file,
    relative paths resolve against it and snapshot_prefix follows Caffe's rule."""
    from ..formats.config import read_solver_param, resolve_solver_paths
    from ..formats.upgrade import upgrade_snapshot_prefix, upgrade_solver_param

    if isinstance(param, pb.SolverParameter):
        copy = pb.SolverParameter()
        copy.CopyFrom(param)
        copy = upgrade_solver_param(copy, solver_file)
        if solver_file is not None:
            copy = upgrade_snapshot_prefix(copy, solver_file)
    elif isinstance(param, (str, os.PathLike)):
        solver_file = os.fspath(param)
        if not os.path.isfile(solver_file):
            raise SolverError(f"solver file '{solver_file}' not found")
        copy = read_solver_param(solver_file)  # upgraded, with the snapshot_prefix rule
    else:
        raise TypeError(f"a solver takes a path or a SolverParameter, not {type(param).__name__}")
    if solver_file is not None:
        copy = resolve_solver_paths(copy, solver_file)
    return copy, solver_file, str(solver_file) if solver_file is not None else "solver"


class NetBuilder:
    """Builds the nets a SolverParameter names. NetState = the phase, merged with the net's own
    state, then train_state / test_state[k] (Caffe's precedence). Each net gets its own random
    stream: with random_seed s the train net draws from make_rng(s), test net k from [s, k]."""

    def __init__(self, param, solver_file, source, seed, dtype):
        self.param, self.solver_file, self.source = param, solver_file, source
        self.seed, self.dtype = seed, dtype

    def _net_rng(self, index):
        # One stream per net: the train net gets make_rng(seed), test net k a seed of its own.
        if self.seed is None:
            return make_rng(None)
        return make_rng(self.seed) if index == 0 else np.random.default_rng([self.seed, index])

    def _read_net(self, path):
        from ..formats.config import read_net_param, resolve_net_paths

        if not os.path.isfile(path):
            where = (f" (relative paths are looked up beside {self.solver_file}, then in the "
                     f"working directory)") if self.solver_file else ""
            raise SolverError(f"{self.source}: net file '{path}' not found{where}")
        return resolve_net_paths(read_net_param(path), path), path

    def _inline_net(self, net_param):
        copy = pb.NetParameter()
        copy.CopyFrom(net_param)  # Net fills in its state; keep the solver's message intact
        return copy

    def _build_net(self, net_param, phase, extra_state, rng):
        from ..net import Net

        state = pb.NetState(phase=phase)
        state.MergeFrom(net_param.state)
        if extra_state is not None:
            state.MergeFrom(extra_state)
        net_param.state.CopyFrom(state)
        # The merged state (stages included) is in net_param; Net adds `stages` to it.
        net = Net(net_param, phase=state.phase, level=state.level, rng=rng, dtype=self.dtype)
        if phase == pb.TEST:
            net.debug_info = self.param.debug_info  # test nets: every forward (Caffe's rule)
        for weights in self.param.weights:
            self._load_weights(net, weights)
        return net

    def _load_weights(self, net, model_list):
        """Caffe's LoadNetWeights: a comma-separated list of .caffemodel files, by layer name."""
        from ..formats.config import resolve_path

        for name in (n.strip() for n in model_list.split(",")):
            path = resolve_path(name, self.solver_file)
            if not os.path.isfile(path):
                raise SolverError(f"{self.source}: weights file '{name}' not found")
            logger.info("Finetuning from %s", path)
            net.copy_from(path)  # .caffemodel or .caffemodel.h5

    def train_net(self):
        p = self.param
        fields = ("net", "net_param", "train_net", "train_net_param")
        given = [f for f in fields if p.HasField(f)]
        if len(given) != 1:
            raise SolverError(f"{self.source}: give exactly one of {', '.join(fields)} for the "
                              f"train net (found {', '.join(given) or 'none'})")
        if p.HasField("train_net_param"):
            logger.info("Creating training net specified in train_net_param.")
            net_param = self._inline_net(p.train_net_param)
        elif p.HasField("net_param"):
            logger.info("Creating training net specified in net_param.")
            net_param = self._inline_net(p.net_param)
        else:
            name = p.train_net if p.HasField("train_net") else p.net
            net_param, path = self._read_net(name)
            logger.info("Creating training net from net file: %s", path)
        train_state = p.train_state if p.HasField("train_state") else None
        return self._build_net(net_param, pb.TRAIN, train_state, self._net_rng(0))

    def test_nets(self):
        p = self.param
        generic = p.HasField("net") + p.HasField("net_param")
        specific = len(p.test_net_param) + len(p.test_net)
        if generic > 1:
            raise SolverError(f"{self.source}: give net or net_param, not both")
        if (len(p.test_iter) < specific) if generic else (len(p.test_iter) != specific):
            raise SolverError(f"{self.source}: test_iter must be given once per test net "
                              f"({specific} test nets, {len(p.test_iter)} test_iter)")
        count = len(p.test_iter) if generic else specific
        if len(p.test_state) and len(p.test_state) != count:
            raise SolverError(f"{self.source}: test_state must be unset or given once per test "
                              f"net ({count} test nets, {len(p.test_state)} test_state)")
        if count and p.test_interval <= 0:
            raise SolverError(f"{self.source}: test_iter is given but test_interval is not; set "
                              f"test_interval > 0 (or remove test_iter)")
        sources = []  # Caffe's order: test_net_param, test_net files, then the generic net
        sources += [("test_net_param", lambda m=m: self._inline_net(m)) for m in p.test_net_param]
        sources += [(f"test_net file: {f}", lambda f=f: self._read_net(f)[0]) for f in p.test_net]
        for _ in range(count - specific):
            if p.HasField("net_param"):
                sources.append(("net_param", lambda: self._inline_net(p.net_param)))
            else:
                sources.append((f"net file: {p.net}", lambda: self._read_net(p.net)[0]))
        nets = []
        for k, (what, read) in enumerate(sources):
            logger.info("Creating test net (#%d) specified by %s", k, what)
            state = p.test_state[k] if len(p.test_state) else None
            nets.append(self._build_net(read(), pb.TEST, state, self._net_rng(k + 1)))
        return nets
