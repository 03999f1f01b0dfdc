"""Numeric routines layers call: im2col/col2im, compiled window copies, pooling phases and
the DFT convolution."""
