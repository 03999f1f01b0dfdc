"""Training feedback beside Caffe's log: a live progress line for terminals and the metrics
file. Both are solver callbacks (see Solver.add_callback)."""
import time

import numpy as np

from ..solvers import lr_policy
from .metrics import MetricsWriter


def _scalars(outputs):
    """{name: float}; a multi-element output becomes name_0, name_1, ..."""
    flat = {}
    for name, value in outputs.items():
        values = np.asarray(value, dtype=np.float64).ravel()
        if values.size == 1:
            flat[name] = float(values[0])
        else:
            flat.update({f"{name}_{i}": float(v) for i, v in enumerate(values)})
    return flat


class MetricsCallback:
    """Writes a train record per display and a test record per test net to a JSON-lines file;
    a resumed run appends and continues the clock."""

    def __init__(self, path):
        self.writer = MetricsWriter(path, start_seconds=MetricsWriter.last_seconds(path))
        self.solver = None

    def on_display(self, iteration, loss, outputs, lr):
        self.writer.write("train", iteration, _scalars(outputs), lr=lr, smoothed_loss=loss)

    def on_test(self, iteration, results):
        for k, result in enumerate(results):
            self.writer.write("test", iteration, _scalars(result), net=k)


class ProgressLine:
    """`[ 1200/10000] 12% 85.2 it/s ETA 1:43 loss 0.082 lr 0.0091 accuracy 0.985`, redrawn in
    place at most five times a second; tests and snapshots print a permanent line above it."""

    def __init__(self, solver, stream, interval=0.2):
        self.solver, self.stream, self.interval = solver, stream, interval
        self.start_time = self.start_iter = None
        self.last_draw = 0.0
        self.test_text = ""

    def _rate(self):
        elapsed = time.perf_counter() - self.start_time
        done = self.solver.iter - self.start_iter
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def on_gradients_ready(self):
        now = time.perf_counter()
        if self.start_time is None:
            self.start_time, self.start_iter = now, self.solver.iter
        if now - self.last_draw >= self.interval:
            self.last_draw = now
            self.draw()

    def draw(self):
        p, it = self.solver.param, self.solver.iter
        rate = self._rate()
        eta = _clock((p.max_iter - it) / rate) if rate else "--:--"
        lr, _ = lr_policy.learning_rate(p, it, self.solver.current_step)
        width = len(str(p.max_iter))
        line = (f"[{it:>{width}}/{p.max_iter}] {100 * it / max(p.max_iter, 1):3.0f}% "
                f"{rate:6.1f} it/s ETA {eta}  loss {self.solver.smoothed_loss:.4g}  lr {lr:.3g}"
                f"{self.test_text}")
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def message(self, text):
        self.stream.write("\r\x1b[K" + text + "\n")
        self.stream.flush()

    def on_test(self, iteration, results):
        for k, result in enumerate(results):
            values = "  ".join(f"{name} {value:.4g}" for name, value in _scalars(result).items())
            self.message(f"Iteration {iteration}, test net #{k}: {values}")
        first = _scalars(results[0]) if results else {}
        shown = {n: v for n, v in first.items() if "acc" in n} or first
        self.test_text = "".join(f"  test {n} {v:.4g}" for n, v in shown.items())

    def on_snapshot(self, paths):
        self.message("Snapshot: " + ", ".join(str(p) for p in paths))

    def close(self):
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds):
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
