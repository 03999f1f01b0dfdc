"""RMSProp: h = d·h + (1-d)·g²; w -= η·g / (sqrt(h) + δ)."""
from ..errors import SolverError
from ..registry import SOLVERS
from .solver import Solver


@SOLVERS.register("RMSProp")
class RMSPropSolver(Solver):
    """Tieleman and Hinton's RMSProp with decay d = rms_decay (default .99, in [0, 1)).

    Momentum must be 0 (Caffe CHECKs it). History: N blobs, the running mean of g².
    """

    type = "RMSProp"

    def check_param(self, param):
        super().check_param(param)
        self.require_zero_momentum(param)
        if not 0 <= param.rms_decay < 1:
            raise SolverError(f"{self.source}: rms_decay must lie in [0, 1), got "
                              f"{param.rms_decay:g}")

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        h = self.part(self.history[param_id], part)
        dt = diff.dtype.type
        decay = dt(self.param.rms_decay)
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        h *= decay
        h += (dt(1) - decay) * (diff * diff)
        diff[...] = local_rate * (diff / (self.xp.sqrt(h) + dt(self.param.delta)))
