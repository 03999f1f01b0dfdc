"""Convolution's DFT route: 2-D, stride 1, no groups or dilation, where the per-frequency
GEMMs need under DFT_BELOW of im2col's multiply-adds (many channels, small images); the
transforms themselves are in kernels/dft_conv.py."""
from math import prod

import numpy as np

from ..runtime import get_array_module
from .dft_conv import DftPlan, plan_fits

# A 2-D convolution with stride 1 runs through the DFT when that needs fewer than this
# fraction of im2col's multiply-adds (its GEMMs are smaller and complex).
DFT_BELOW = 0.5


class DftRoute:
    """ConvolutionLayer's methods for the DFT route (a mixin: it reads the layer's geometry,
    blobs and workspaces)."""

    def dft_plan(self, x):
        """A DftPlan when the DFT route applies (2-D, stride 1, no dilation or groups, NumPy)
        and needs under DFT_BELOW of im2col's multiply-adds; else None."""
        if (self.num_spatial != 2 or self.group != 1 or set(self.stride) != {1}
                or set(self.dilation) != {1} or get_array_module(x) is not np
                or not plan_fits(self.in_spatial, self.kernel, self.pad)):
            return None
        plan = getattr(self, "dft_cached", None)
        if plan is None or (plan.h, plan.w) != self.in_spatial or plan.real != x.dtype:
            plan = self.dft_cached = DftPlan(self.channels, self.num_output, self.in_spatial,
                                             self.kernel, self.pad, x.dtype)
        direct = self.channels * self.num_output * prod(self.kernel) * prod(plan.out)
        return plan if plan.multiply_adds() < DFT_BELOW * direct else None

    def refresh_dft_product(self):
        """The DFT route's weight transform, rebuilt only when the weights changed (training
        changes them once per iteration; inference and backward reuse it)."""
        if self.dft is None:
            return
        w = self.blobs[0].data
        if (getattr(self, "dft_product_of", None) is not self.dft or
                not np.array_equal(self.dft_weights, w)):
            self.dft_weights, self.dft_product_of = w.copy(), self.dft
            self.dft_product = self.dft.product(self.dft.weights(w, self.ws), self.ws)
            self.dft_product_t = None  # made by the first backward that needs it

    def refresh_dft_adjoint(self, propagate_down):
        """The transposed weight transform for the input gradient, when one is needed."""
        if self.dft is not None and any(propagate_down) and self.dft_product_t is None:
            self.dft_product_t = self.dft.adjoint_product(self.dft_product, self.ws)

    def forward_range_dft(self, bottom, top, i, start, stop):
        """top = W ⋆ bottom + b for images [start, stop) through the DFT; the input spectrum
        stays in the range's workspace for backward."""
        x = bottom.data.reshape((self.num, self.channels) + self.in_spatial)[start:stop]
        y = top.data.reshape((self.num, self.num_output) + self.out_spatial)[start:stop]
        self.dft.forward(x, self.dft_product, y, self.workspace(start), f"spec{i}",
                         self.blobs[1].data if self.bias_term else None)
        self.cached[i, start, stop] = True

    def backward_range_dft(self, top, propagate_down, bottom, i, start, stop):
        """backward_range through the DFT: ∂x by the adjoint transforms, and (∂A, ∂b) of the
        range from the spectra, returned for backward() to add in batch order (∂A, the
        gradient of the weights' transform, is summed over the ranges and then transformed
        back to ∂W once)."""
        shape = (self.num, self.channels) + self.in_spatial
        dy = top.diff.reshape((self.num, self.num_output) + self.out_spatial)[start:stop]
        ws = self.workspace(start)
        spec = None
        if self.param_propagate_down[0]:
            spec = (ws.scratch(f"spec{i}", (self.dft.bins, stop - start, self.channels),
                               self.dft.complex) if self.cached.get((i, start, stop))
                    else self.dft.forward_input(bottom.data.reshape(shape)[start:stop], ws,
                                                f"spec{i}"))
        dx = bottom.diff.reshape(shape)[start:stop] if propagate_down else None
        da, db = self.dft.backward(dy, self.dft_product_t, spec, dx, ws)
        return da, db if self.bias_term and self.param_propagate_down[1] else None
