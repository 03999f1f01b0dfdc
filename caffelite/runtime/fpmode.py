"""Floating-point modes: flushing denormals to zero inside net passes and solver updates."""
import ctypes
import os
import platform
import sys
import threading

from .threads import Blocks

# Float32 values below 1.2e-38 (denormals) cost x86 cores a microcode assist per operation,
# about 100x a normal one. Caffe's initial weights are small (CIFAR-10 quick's conv1 has
# std 1e-4), so early in training the DFT layers' GEMMs make denormal partial products: their
# weight gradient took 8 instead of 3 ms. Inside net passes and solver updates caffelite sets
# the thread's flush-to-zero and denormals-are-zero bits (as TensorFlow does in its compute
# threads): a denormal becomes 0, an absolute change below 1.2e-38.
# CAFFELITE_FLUSH_DENORMALS=0 or set_flush_denormals(False) turns it off.
_FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)


class _FpMode(ctypes.Structure):
    """glibc's femode_t on x86-64."""
    _fields_ = [("control_word", ctypes.c_ushort), ("reserved", ctypes.c_ushort),
                ("mxcsr", ctypes.c_uint)]


def _load_fp_modes():
    """(fegetmode, fesetmode) of glibc's libm on x86-64 Linux, else None (no flushing)."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libm = ctypes.CDLL("libm.so.6")
        return libm.fegetmode, libm.fesetmode
    except (OSError, AttributeError):  # musl, or a glibc before 2.25
        return None


_fp_modes = _load_fp_modes()
_flush_enabled = os.environ.get("CAFFELITE_FLUSH_DENORMALS", "1") != "0"
_fp_local = threading.local()  # per thread: .mode to restore when the outermost block ends
_blocks = Blocks()


def set_flush_denormals(enabled):
    """Whether net passes and solver updates flush denormals to zero (default on)."""
    global _flush_enabled
    _flush_enabled = bool(enabled)


def _set_thread_flush(flush):
    """Set or clear this thread's FTZ/DAZ bits; returns the previous mode (an _FpMode)."""
    mode = _get_mode()
    previous = _FpMode(mode.control_word, mode.reserved, mode.mxcsr)
    mode.mxcsr = (mode.mxcsr | _FTZ_DAZ) if flush else (mode.mxcsr & ~_FTZ_DAZ)
    _fp_modes[1](ctypes.byref(mode))
    return previous


def _get_mode():
    mode = _FpMode()
    _fp_modes[0](ctypes.byref(mode))
    return mode


def flushing():
    """Whether this thread is inside flush_denormals with flushing on."""
    return getattr(_fp_local, "mode", None) is not None


class flush_denormals:
    """Context (re-entrant, per thread): flush denormals to zero in this thread while inside;
    the thread's previous floating-point mode comes back on the way out. The pool's threads
    follow the mode of the thread that hands them work.

    Blocks are kept by frame (threads.Blocks), and the mode to restore is read before it is
    changed and forgotten only after it is back: a Ctrl-C at any point of __enter__ or
    __exit__ leaves the thread flushing at most until its next pass ends."""

    def __enter__(self):
        self._frame = sys._getframe(1)
        if _blocks.enter(self._frame) and _flush_enabled and _fp_modes:
            if getattr(_fp_local, "mode", None) is None:
                _fp_local.mode = _get_mode()
            _set_thread_flush(True)
        return self

    def __exit__(self, *exc):
        if _blocks.exit(self._frame) and getattr(_fp_local, "mode", None) is not None:
            _fp_modes[1](ctypes.byref(_fp_local.mode))
            _fp_local.mode = None


def follow_flush(thread, flush):
    """In a pool thread: take the submitting thread's flush setting (written on change)."""
    if _fp_modes and thread.flushing_now != flush:
        _set_thread_flush(flush)
        thread.flushing_now = flush
