"""Nesterov momentum: v' = μ·v + η·g; w -= (1+μ)·v' - μ·v."""
from ..registry import SOLVERS
from .sgd import SGDSolver


@SOLVERS.register("Nesterov")
class NesterovSolver(SGDSolver):
    """Nesterov's accelerated gradient as Caffe writes it (step back, then over-step).

    History: N blobs, the momentum buffer v (learning rate included, as SGD's).
    """

    type = "Nesterov"

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        v = self.part(self.history[param_id], part)
        dt = diff.dtype.type
        momentum = dt(self.param.momentum)
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        v_old = v.copy()
        v *= momentum
        v += local_rate * diff
        diff[...] = (dt(1) + momentum) * v - momentum * v_old
