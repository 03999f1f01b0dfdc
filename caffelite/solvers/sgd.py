"""SGD with momentum (Caffe's form, the rate inside the buffer): v = μ·v + η·g; w -= v."""
from ..registry import SOLVERS
from .solver import Solver


@SOLVERS.register("SGD")
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum.

    History: N blobs (one per learnable param), the momentum buffer v that already includes the
    learning rate, unlike PyTorch's `v = μv + g; w -= lr·v`, so BVLC .solverstate files resume
    unchanged. η = rate · lr_mult.
    """

    type = "SGD"

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        v = self.part(self.history[param_id], part)
        dt = diff.dtype.type
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        # caffe_cpu_axpby: v = local_rate·g + μ·v; the update is v itself
        step = self.xp.multiply(diff, local_rate, out=self.part(self.scratch(param_id), part))
        v *= dt(self.param.momentum)
        v += step
        diff[...] = v
