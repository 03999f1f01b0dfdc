"""TensorBoard event files from training: a solver callback writing the train outputs, the
smoothed loss, the learning rate and every test output as scalars (through tensorboardX, the
optional 'tensorboard' extra).

    from caffelite.tools.tensorboard import TensorBoardCallback
    board = TensorBoardCallback("runs/lenet")
    solver.add_callback(board)
    solver.solve()
    board.close()

Tags: `train/<output>` per train net output, `train/smoothed_loss` (the loss Caffe logs),
`train/lr`, and `test/<output>` (`test<k>/<output>` for test net k > 0). A multi-element
output becomes `<output>_0`, `<output>_1`, ...
"""
from ..errors import CaffeliteError
from .progress import _scalars


def summary_writer(logdir):
    """tensorboardX's SummaryWriter for logdir, or one clear error when it is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise CaffeliteError('TensorBoard logging needs tensorboardX: '
                             'pip install "caffelite[tensorboard]"') from None
    return SummaryWriter(logdir=str(logdir))


class TensorBoardCallback:
    """Solver callback (Solver.add_callback) writing scalars to event files under logdir.
    Events are flushed after each display and test, so TensorBoard follows a live run."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.writer = summary_writer(logdir)

    def on_display(self, iteration, loss, outputs, lr):
        for name, value in _scalars(outputs).items():
            self.writer.add_scalar(f"train/{name}", value, iteration)
        self.writer.add_scalar("train/smoothed_loss", float(loss), iteration)
        self.writer.add_scalar("train/lr", float(lr), iteration)
        self.writer.flush()

    def on_test(self, iteration, results):
        for k, result in enumerate(results):
            prefix = "test" if k == 0 else f"test{k}"
            for name, value in _scalars(result).items():
                self.writer.add_scalar(f"{prefix}/{name}", value, iteration)
        self.writer.flush()

    def on_snapshot(self, paths):
        self.writer.flush()

    def close(self):
        self.writer.close()
