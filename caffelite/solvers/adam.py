"""Adam: m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²; w -= η·sqrt(1-β2^t)/(1-β1^t)·m/(sqrt(v)+δ)."""
import math

from ..errors import SolverError
from ..registry import SOLVERS
from .solver import Solver


@SOLVERS.register("Adam")
class AdamSolver(Solver):
    """Kingma and Ba's Adam; β1 = momentum, β2 = momentum2 (.999), δ = delta (1e-8) outside
    the square root, t = iter + 1 (the bias correction folds into the step size).

    History: 2N blobs, first the N first moments m, then the N second moments v.
    """

    type = "Adam"
    history_per_param = 2

    def check_param(self, param):
        super().check_param(param)
        # β1 = 1 divides by 1 - β1^t = 0, β2 > 1 takes the root of a negative number.
        for name, symbol in (("momentum", "β1"), ("momentum2", "β2")):
            value = getattr(param, name)
            if not 0 <= value < 1:
                raise SolverError(f"{self.source}: Adam's {name} ({symbol}) must lie in "
                                  f"[0, 1), got {value:g}")

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        m = self.part(self.history[param_id], part)
        v = self.part(self.history[len(self.learnable_params) + param_id], part)
        dt = diff.dtype.type
        beta1, beta2 = dt(self.param.momentum), dt(self.param.momentum2)
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        t = self.iter + 1
        correction = dt(math.sqrt(1.0 - math.pow(beta2, t)) / (1.0 - math.pow(beta1, t)))
        m *= beta1
        m += (dt(1) - beta1) * diff
        v *= beta2
        v += (dt(1) - beta2) * (diff * diff)
        diff[...] = (local_rate * correction) * (m / (self.xp.sqrt(v) + dt(self.param.delta)))
