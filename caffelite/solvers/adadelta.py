"""AdaDelta: hg = μ·hg + (1-μ)·g²; u = g·sqrt((hu+δ)/(hg+δ)); hu = μ·hu + (1-μ)·u²; w -= η·u."""
from ..registry import SOLVERS
from .solver import Solver


@SOLVERS.register("AdaDelta")
class AdaDeltaSolver(Solver):
    """Zeiler's AdaDelta; μ = momentum (the decay), δ = delta. Caffe's examples use base_lr 1.

    History: 2N blobs, first the N squared-gradient averages hg, then the N squared-update
    averages hu. hu accumulates the update *before* the learning rate scales it.
    """

    type = "AdaDelta"
    history_per_param = 2

    def compute_update_value(self, param_id, rate, part=slice(None)):
        diff = self.part(self.learnable_params[param_id].diff, part)
        hg = self.part(self.history[param_id], part)
        hu = self.part(self.history[len(self.learnable_params) + param_id], part)
        dt = diff.dtype.type
        momentum = dt(self.param.momentum)
        delta = dt(self.param.delta)
        local_rate = dt(rate) * dt(self.net.params_lr[param_id])
        hg *= momentum
        hg += (dt(1) - momentum) * (diff * diff)
        diff *= self.xp.sqrt((hu + delta) / (hg + delta))  # u, unscaled
        hu *= momentum
        hu += (dt(1) - momentum) * (diff * diff)
        diff *= local_rate
