"""AdaGrad: h += g²; w -= η·g / (sqrt(h) + δ)."""
from ..registry import SOLVERS
from .solver import Solver


@SOLVERS.register("AdaGrad")
class AdaGradSolver(Solver):
    """Duchi et al.'s adaptive gradient. Momentum must be 0 (Caffe CHECKs it).

    History: N blobs, the running sum of squared gradients h.
    """

    type = "AdaGrad"

    def check_param(self, param):
        super().check_param(param)
        self.require_zero_momentum(param)

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        h = self.part(self.history[param_id], part)
        dt = diff.dtype.type
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        h += diff * diff
        diff[...] = local_rate * (diff / (self.xp.sqrt(h) + dt(self.param.delta)))
