"""2-D convolution (stride 1, no dilation, one group) through the discrete Fourier transform.

Caffe's convolution is a cross-correlation, y[i] = Σ_j w[j]·x_pad[i + j]. With transforms of
the padded input's length L (every output needs x_pad[i + j] for i + j < L, so nothing wraps)
it becomes a product per frequency: Y[ν] = A[ν]·X[ν] with A[ν] = Σ_j w[j]·e^{+2πiνj/L}.
In 2-D with channels, each frequency bin (g, f) is one small complex GEMM,
Y[g, f] (n, M) = X[g, f] (n, C) @ A[g, f] (C, M), which costs 4·L_h·L_w/2 real multiply-adds
per (c, m) pair against ∏kernel·out_h·out_w for im2col: about 8x fewer for CIFAR-10's 5x5
layers on 16x16 inputs. The transforms themselves are GEMMs with small matrices, one image
axis at a time (NumPy's FFT is slow on thousands of tiny transforms).

Every step is a linear map written as a matrix, so backward is each step's adjoint (transpose,
or conjugate transpose for the complex steps) in reverse order: the gradients are exact, not
approximations through a second transform. Hermitian symmetry along w is used once, in the
forward transform (only the L_w//2 + 1 non-negative frequencies are formed) and in the
inverse (the others weigh twice); nothing else needs to know about it.

Data layouts, for a batch part of nb images (C in, M out, H×W in, P×Q out, F = L_w//2 + 1):
    x (nb, C, H, W) -> @TW -> (nb, C, H, F) complex -> transposed (H, F, nb, C)
      -> TH@ -> X (L_h·F bins, nb, C) -> @A -> Y (bins, nb, M) -> IH@ -> (P, F, nb, M)
      -> transposed (nb, M, P, F) -> @IW -> y (nb, M, P, Q)
"""
import numpy as np

from ..runtime import get_array_module, matmul, parallel, stacked_matmul

# The route is for small images: beyond this many transform-matrix elements (128 MiB complex)
# im2col is used, so a large pad or input never builds a plan bigger than the data.
MAX_PLAN_ELEMENTS = 2**24


def plan_fits(in_size, kernel, pad):
    """Whether a DftPlan applies to this 2-D geometry: non-empty input and output (a kernel
    wider than the padded input has no output, e.g. a Deconvolution's geometry read as a
    Convolution's) and transform matrices of at most MAX_PLAN_ELEMENTS."""
    (h, w), (kh, kw), (ph, pw) = in_size, kernel, pad
    lh, lw = h + 2 * ph, w + 2 * pw
    p, q = lh - kh + 1, lw - kw + 1
    if min(h, w, p, q) <= 0:
        return False
    freq = lw // 2 + 1
    elements = 2 * lh * (p + h + kh) + 4 * freq * (w + kw + q)
    return elements <= MAX_PLAN_ELEMENTS


class DftPlan:
    """The transform matrices of one convolution geometry; shared by its batch parts.

    The per-bin products are real GEMMs on interleaved (re, im) rows with the real form of A
    (product()), whose transpose is the real form of Aᴴ: backward needs no second matrix.
    """

    def __init__(self, channels, num_output, in_size, kernel, pad, dtype=np.float32):
        if not plan_fits(in_size, kernel, pad):
            raise ValueError(f"no DFT plan for input {in_size}, kernel {kernel}, pad {pad}")
        self.channels, self.num_output = channels, num_output
        (self.h, self.w), (kh, kw), (ph, pw) = in_size, kernel, pad
        self.lh, self.lw = self.h + 2 * ph, self.w + 2 * pw
        self.out = (self.lh - kh + 1, self.lw - kw + 1)
        self.freq = self.lw // 2 + 1
        self.bins = self.lh * self.freq
        self.real = real = np.dtype(dtype)
        self.complex = cplx = np.result_type(real, np.complex64)
        f, g = np.arange(self.freq), np.arange(self.lh)

        def dft(rows, cols, length, sign):
            return np.exp(sign * 2j * np.pi * np.outer(rows, cols) / length)

        def adjoint(m):
            return np.ascontiguousarray(m.conj().T)

        # Input: along w to the non-negative frequencies (real GEMM, complex result), then
        # along h (complex GEMM). Adjoint of the first: ∂x = Σ_f ∂R_re·tw_re + ∂R_im·tw_im.
        self.tw = _columns(dft(np.arange(self.w) + pw, f, self.lw, -1)).astype(real)  # (W, 2F)
        self.th = dft(g, np.arange(self.h) + ph, self.lh, -1).astype(cplx)  # (L_h, H)
        self.th_adjoint = adjoint(self.th)
        # Weights: kernel offsets to bins, with the correlation's e^{+…}.
        kwt = dft(np.arange(kw), f, self.lw, 1)  # (kw, F)
        self.kw = _columns(kwt).astype(real)  # (kw, 2F)
        self.kw_adjoint = _rows(kwt.T).astype(real)  # (2F, kw): Re(z·k̄)
        self.kh = dft(g, np.arange(kh), self.lh, 1).astype(cplx)  # (L_h, kh)
        self.kh_adjoint = adjoint(self.kh)
        # Output: along h (complex GEMM), then Re(·) along w, where frequencies
        # 1 … (L_w − 1)//2 stand for their mirror images too and count twice.
        self.ih = (dft(np.arange(self.out[0]), g, self.lh, 1) / self.lh).astype(cplx)  # (P, L_h)
        self.ih_adjoint = adjoint(self.ih)
        weight = np.where((f == 0) | (2 * f == self.lw), 1.0, 2.0) / self.lw
        iw = weight[:, None] * dft(f, np.arange(self.out[1]), self.lw, 1)  # (F, Q)
        self.iw = _rows(iw.conj()).astype(real)  # (2F, Q): Re(o·e) = o_re·e_re − o_im·e_im
        self.iw_adjoint = _columns(adjoint(iw)).astype(real)  # (Q, 2F)

    def multiply_adds(self):
        """Real multiply-adds per image of a forward pass (transforms and products)."""
        c, m, (p, q) = self.channels, self.num_output, self.out
        lh, f = self.lh, self.freq
        return (c * self.h * self.w * 2 * f + 4 * lh * self.h * f * c
                + 4 * self.bins * c * m + 4 * p * lh * f * m + m * p * 2 * f * q)

    def weights(self, w, ws):
        """A (bins, C, M) complex from the weights (M, C, kh, kw), in ws["dft_a"]; each step
        split among the threads (its GEMMs have K = kh or kw, which BLAS runs slowly)."""
        m, c, kh, kw = w.shape
        along_w = ws.scratch("dft_a_rows", (m, c * kh, 2 * self.freq), self.real)
        turned = ws.scratch("dft_a_turned", (kh, self.freq, c, m), self.complex)

        def along_w_part(start, stop):  # output channels [start, stop)
            np.matmul(w[start:stop].reshape(-1, kw).astype(self.real, copy=False), self.kw,
                      out=along_w[start:stop].reshape(-1, 2 * self.freq))
            turned[..., start:stop] = along_w[start:stop].view(self.complex).reshape(
                stop - start, c, kh, self.freq).transpose(2, 3, 1, 0)
        parallel(along_w_part, m, min_items=8)
        a = ws.scratch("dft_a", (self.bins, c, m), self.complex)
        _split_columns(self.kh, turned.reshape(kh, -1), a.reshape(self.lh, -1))
        return a

    def product(self, a, ws):
        """The real (bins, 2C, 2M) matrix of X ↦ X @ A per bin, in a kept buffer of ws, the
        bins split among the threads: training changes the weights every step, and these
        megabytes are written each time."""
        out = ws.scratch("dft_product", (self.bins, 2 * self.channels, 2 * self.num_output),
                         self.real)
        parallel(lambda start, stop: right_product(a[start:stop], out[start:stop]), self.bins,
                 min_items=16)
        return out

    def adjoint_product(self, product, ws):
        """product's transpose (bins, 2M, 2C), the real form of X ↦ X @ Aᴴ, contiguous in a
        kept buffer of ws, the bins split among the threads: BLAS runs the input gradient's
        per-bin GEMMs against it 1.4-2.2× faster than against a transposed view of product
        (CIFAR-10 quick's conv2, 50 images: 0.95 against 2.1 ms), and the copy costs about
        what building product does, once per step."""
        out = ws.scratch("dft_product_t", (self.bins, 2 * self.num_output, 2 * self.channels),
                         self.real)

        def part(start, stop):
            out[start:stop] = product[start:stop].transpose(0, 2, 1)
        parallel(part, self.bins, min_items=16)
        return out

    def weight_grad(self, da, ws):
        """∂w (M, C, kh, kw) from ∂A (bins, C, M): the adjoint of weights(), split likewise."""
        kh, kw = self.kh.shape[1], self.kw.shape[0]
        c, m = self.channels, self.num_output
        along_h = ws.scratch("dft_dw_rows", (kh, self.freq, c, m), self.complex)
        _split_columns(self.kh_adjoint, da.reshape(self.lh, -1), along_h.reshape(kh, -1))
        turned = ws.scratch("dft_dw_turned", (m, c, kh, self.freq), self.complex)
        dw = np.empty((m, c, kh, kw), self.real)

        def part(start, stop):  # output channels [start, stop)
            turned[start:stop] = along_h[..., start:stop].transpose(3, 2, 0, 1)
            np.matmul(turned[start:stop].view(self.real).reshape(-1, 2 * self.freq),
                      self.kw_adjoint, out=dw[start:stop].reshape(-1, kw))
        parallel(part, m, min_items=8)
        return dw

    # -- the transforms, each with its adjoint ---------------------------------------------
    def forward_input(self, x, ws, name):
        """X (bins, nb, C) of x (nb, C, H, W); kept in ws[name] for backward."""
        nb, c = x.shape[0], self.channels
        xp = get_array_module(x)
        rows = ws.scratch("dft_rows", (nb * c * self.h, 2 * self.freq), self.real, xp)
        matmul(x.reshape(-1, self.w), self.tw, rows)
        turned = ws.scratch("dft_turned", (self.h, self.freq, nb, c), self.complex, xp)
        turned[...] = rows.view(self.complex).reshape(nb, c, self.h, self.freq).transpose(
            2, 3, 0, 1)
        spec = ws.scratch(name, (self.bins, nb, c), self.complex, xp)
        matmul(self.th, turned.reshape(self.h, -1), spec.reshape(self.lh, -1))
        return spec

    def input_grad(self, dspec, dx, ws):
        """dx (nb, C, H, W) from ∂X (bins, nb, C): the adjoint of forward_input."""
        nb, c = dx.shape[0], self.channels
        xp = get_array_module(dx)
        turned = ws.scratch("dft_turned", (self.h, self.freq, nb, c), self.complex, xp)
        matmul(self.th_adjoint, dspec.reshape(self.lh, -1), turned.reshape(self.h, -1))
        rows = ws.scratch("dft_rows", (nb, c, self.h, self.freq), self.complex, xp)
        rows[...] = turned.transpose(2, 3, 0, 1)
        matmul(rows.view(self.real).reshape(-1, 2 * self.freq), self.tw.T, dx.reshape(-1, self.w))

    def inverse(self, spec, y, ws):
        """y (nb, M, P, Q) from Y (bins, nb, M)."""
        nb, m, (p, q) = y.shape[0], self.num_output, self.out
        xp = get_array_module(y)
        turned = ws.scratch("dft_out", (p, self.freq, nb, m), self.complex, xp)
        matmul(self.ih, spec.reshape(self.lh, -1), turned.reshape(p, -1))
        rows = ws.scratch("dft_out_rows", (nb, m, p, self.freq), self.complex, xp)
        rows[...] = turned.transpose(2, 3, 0, 1)
        matmul(rows.view(self.real).reshape(-1, 2 * self.freq), self.iw, y.reshape(-1, q))

    def inverse_adjoint(self, dy, ws, name):
        """∂Y (bins, nb, M) from dy (nb, M, P, Q): the adjoint of inverse()."""
        nb, m, (p, q) = dy.shape[0], self.num_output, self.out
        xp = get_array_module(dy)
        rows = ws.scratch("dft_out_rows", (nb * m * p, 2 * self.freq), self.real, xp)
        matmul(dy.reshape(-1, q), self.iw_adjoint, rows)
        turned = ws.scratch("dft_out", (p, self.freq, nb, m), self.complex, xp)
        turned[...] = rows.view(self.complex).reshape(nb, m, p, self.freq).transpose(2, 3, 0, 1)
        dspec = ws.scratch(name, (self.bins, nb, m), self.complex, xp)
        matmul(self.ih_adjoint, turned.reshape(p, -1), dspec.reshape(self.lh, -1))
        return dspec

    # -- the whole layer ----------------------------------------------------------------------
    def forward(self, x, product, y, ws, name, bias=None):
        """y = conv(x) + bias for a batch part, with product = product(weights(w)); the input
        spectrum stays in ws[name]. The bias goes into the zero-frequency bin, which the
        inverse spreads evenly over every output: no pass over y of its own."""
        spec = self.forward_input(x, ws, name)
        out = ws.scratch("dft_y", (self.bins, x.shape[0], self.num_output), self.complex,
                         get_array_module(x))
        stacked_matmul(_real(spec), product, _real(out))
        if bias is not None:
            out[0].real += bias * (self.lh * self.lw)
        self.inverse(out, y, ws)

    def backward(self, dy, product_t, spec, dx, ws):
        """(∂A (bins, C, M), or None without spec (the part's input spectrum from forward);
        ∂bias (M,)); fills dx when given, with product_t = adjoint_product(product)."""
        xp = get_array_module(dy)
        dspec = self.inverse_adjoint(dy, ws, "dft_dy")
        dbias = dspec[0].real.sum(axis=0) * (self.lh * self.lw)  # the adjoint of forward's
        da = None
        if spec is not None:  # ∂A = Xᴴ @ ∂Y per bin, from the (re, im) products
            c, m = self.channels, self.num_output
            parts = stacked_matmul(_real(spec).transpose(0, 2, 1), _real(dspec), ws.scratch(
                "dft_da_parts", (self.bins, 2 * c, 2 * m), self.real, xp))
            # Rows (re x)·∂Y and (im x)·∂Y, read as complex: ∂A = the first − i·the second.
            # Two contiguous complex passes, 1.8× faster than (re, im) through strided views.
            parts = parts.reshape(self.bins, c, 2, 2 * m)
            da = ws.scratch("dft_da", (self.bins, c, m), self.complex, xp)
            xp.multiply(parts[:, :, 1].view(self.complex), -1j, out=da)
            da += parts[:, :, 0].view(self.complex)
        if dx is not None:  # ∂X = ∂Y @ Aᴴ per bin: the transposed real form of A
            dxs = ws.scratch("dft_dx", (self.bins, dy.shape[0], self.channels), self.complex, xp)
            stacked_matmul(_real(dspec), product_t, _real(dxs))
            self.input_grad(dxs, dx, ws)
        return da, dbias


def _split_columns(a, b, out):
    """out = a @ b with b's columns split among the threads: a is a small transform (K of
    a few to tens), so each part is one BLAS call on a long, thin slice."""
    parallel(lambda start, stop: np.matmul(a, b[:, start:stop], out=out[:, start:stop]),
             b.shape[1], min_items=1024)


def right_product(a, out=None):
    """The real (…, 2p, 2q) matrix of z ↦ z @ a for complex a (…, p, q), on complex rows
    stored as interleaved (re, im): one real GEMM, which BLAS runs faster than a complex one
    of these small sizes. Its transpose is the real form of z ↦ z @ aᴴ.

    Row p's real part meets a[p] itself, (re, im) interleaved; its imaginary part meets
    i·a[p] = (−im, re): two contiguous writes of complex rows."""
    shape = a.shape[:-1] + (2, 2 * a.shape[-1])
    out = np.empty(shape, a.real.dtype) if out is None else out.reshape(shape)
    plain = out[..., 0, :].view(a.dtype)
    plain[...] = a
    np.multiply(plain, 1j, out=out[..., 1, :].view(a.dtype))
    return out.reshape(a.shape[:-2] + (2 * a.shape[-2], 2 * a.shape[-1]))


def _real(z):
    """Complex (…, n) as its interleaved real (…, 2n) view."""
    return z.view(z.real.dtype)


def _columns(m):
    """(r, F) complex -> (r, 2F) real with columns re₀, im₀, re₁, im₁, …: a real GEMM with
    it writes complex numbers, readable with .view(complex)."""
    return np.stack([m.real, m.imag], axis=-1).reshape(m.shape[0], -1)


def _rows(m):
    """(F, q) complex -> (2F, q) real with rows re₀, im₀, re₁, …: a real GEMM of complex
    numbers viewed as (re, im) pairs with it gives Σ re·m_re + im·m_im."""
    return np.stack([m.real, m.imag], axis=1).reshape(-1, m.shape[1])
