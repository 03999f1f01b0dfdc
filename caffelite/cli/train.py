"""`caffelite train CONFIG`: Caffe's `caffe train` — solve, resume (--snapshot) or finetune."""
import contextlib
import datetime
import logging
import os
import signal
import sys

import click

from ..errors import CaffeliteError, ConfigError
from ..tools.metrics import METRICS_SUFFIX
from ..tools.progress import MetricsCallback, ProgressLine

logger = logging.getLogger("caffelite")

EFFECTS = ("stop", "snapshot", "none")
GLOG_LEVELS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
               logging.CRITICAL: "F"}


# -- logging ----------------------------------------------------------------------------------
class GlogFormatter(logging.Formatter):
    """glog's line prefix, `I1126 14:55:01.123456 12345 solver.py:228] message`, on every line
    of a message, so Caffe's tools/extra/parse_log.py and extract_seconds.py read our logs."""

    def format(self, record):
        when = datetime.datetime.fromtimestamp(record.created)
        prefix = (f"{GLOG_LEVELS.get(record.levelno, 'I')}{when:%m%d %H:%M:%S}."
                  f"{when.microsecond:06d} {record.process:5d} "
                  f"{record.filename}:{record.lineno}] ")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _LogFileHandler(logging.FileHandler):
    """--log FILE: a write that fails (disk full, read-only) is said once on stderr, and the
    file is written no more, instead of a "Logging error" traceback for every line."""

    failed = False

    def emit(self, record):
        if not self.failed:
            super().emit(record)

    def handleError(self, record):
        self._failed(sys.exc_info()[1])

    def close(self):
        try:
            super().close()
        except OSError as exc:  # the buffered tail could not be written either
            self._failed(exc)

    def _failed(self, exc):
        if self.failed:
            return
        self.failed = True
        why = getattr(exc, "strerror", None) or exc
        sys.stderr.write(f"caffelite: warning: cannot write the log to {self.baseFilename} "
                         f"({why}); it is not written from here on\n")


@contextlib.contextmanager
def caffe_logging(log_file=None, quiet=False, silent=False):
    """Route the "caffelite" logger to stderr (warnings only when quiet, nothing when silent)
    and, with log_file, append everything to that file too; a user error is also written to
    the file."""
    handlers = [_StderrHandler()]
    handlers[0].setLevel(logging.CRITICAL + 1 if silent else
                         logging.WARNING if quiet else logging.INFO)
    if log_file:
        try:
            handlers.append(_LogFileHandler(log_file, mode="a", encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--log {log_file}: cannot open ({exc.strerror or exc})") from None
        handlers[1].setLevel(logging.INFO)
    formatter = GlogFormatter()
    # Python warnings (e.g. NumPy overflow before a NaN loss) become glog "W" lines too, so
    # every line of a log keeps the prefix that parse_log.py reads.
    loggers = (logger, logging.getLogger("py.warnings"))
    for handler in handlers:
        handler.setFormatter(formatter)
        for each in loggers:
            each.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    except CaffeliteError as exc:
        for handler in handlers[1:]:  # stderr gets the one-line error from the CLI group
            handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0,
                                             str(exc), None, None))
        raise
    finally:
        logging.captureWarnings(False)
        logger.setLevel(old_level)
        for handler in handlers:
            for each in loggers:
                each.removeHandler(handler)
            handler.close()


# -- signals ----------------------------------------------------------------------------------
class SignalActions:
    """Caffe's SignalHandler: SIGINT/SIGHUP set flags; the solver asks `actions()` after each
    update and inside the test loop and gets "stop", "snapshot" or "none". A second SIGINT
    while a stop is pending interrupts at once."""

    def __init__(self, sigint_effect="stop", sighup_effect="snapshot"):
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = sighup_effect
        self.pending = []
        self.previous = {}

    def _handle(self, signum, frame):
        effect = self.effects[signum]
        if effect == "none":
            return
        if signum == signal.SIGINT and effect in self.pending:
            raise KeyboardInterrupt
        logger.info("Received %s: will %s after this iteration", signal.Signals(signum).name,
                    effect)
        self.pending.append(effect)

    def __call__(self):
        return self.pending.pop(0) if self.pending else "none"

    @contextlib.contextmanager
    def installed(self):
        try:
            for signum in self.effects:
                self.previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: run without handlers
            pass
        try:
            yield self
        finally:
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)
            self.previous.clear()


# -- the command ------------------------------------------------------------------------------
def split_list(text):
    """A comma list (--weights, --stage) without empty items."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def read_solver_config(path):
    """The upgraded SolverParameter of a solver config file; one-line errors for a bad path."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such solver config file")
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a directory; give a solver .prototxt/.yaml/.json file")
    from ..formats.config import read_solver_param

    return read_solver_param(path)


@click.command(name="train")
@click.argument("config", required=False, metavar="[CONFIG]")
@click.option("--solver", "solver_option", metavar="CONFIG",
              help="The solver config (Caffe's flag; same as the CONFIG argument).")
@click.option("--snapshot", metavar="X.solverstate",
              help="Resume from a .solverstate (its .caffemodel is found through it).")
@click.option("--weights", metavar="A.caffemodel[,B]",
              help="Finetune: initialise from these weights (by layer name), in order.")
@click.option("--level", type=int, default=None, help="The train net state's level.")
@click.option("--stage", metavar="S1[,S2]", help="Stages added to the train net state.")
@click.option("--sigint-effect", type=click.Choice(EFFECTS), default="stop", show_default=True,
              help="What Ctrl-C does: stop after this iteration (with the final snapshot), "
                   "snapshot and go on, or nothing.")
@click.option("--sighup-effect", type=click.Choice(EFFECTS), default="snapshot",
              show_default=True, help="What SIGHUP does.")
@click.option("--log", "log_file", metavar="FILE", help="Also append the log to FILE.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option("--progress/--no-progress", default=None,
              help="A live progress line instead of log lines (default: on a terminal).")
@click.option("--tensorboard", "tensorboard_dir", metavar="DIR", default=None,
              help="Also write TensorBoard event files (train loss, lr, test outputs) to DIR.")
def command(config, solver_option, snapshot, weights, level, stage, sigint_effect,
            sighup_effect, log_file, quiet, progress, tensorboard_dir=None):
    """Train with a solver CONFIG (.prototxt, .yaml or .json, the net by path or inline).

    Relative paths inside the config resolve against the config's directory, then the working
    directory; snapshots go to snapshot_prefix, relative to the working directory as in Caffe.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    # Under mpiexec (caffelite/parallel) rank 0 alone logs and writes files; an error on any
    # rank ends the job.
    from ..parallel import world

    mpi = world()
    root = mpi.is_root
    progress = progress and not quiet and root
    # With the progress line, stderr shows warnings only; --log FILE still gets every line.
    with mpi.fail_together(), caffe_logging(log_file if root else None, quiet or progress,
                                            silent=not root):
        if config and solver_option and config != solver_option:
            raise ConfigError(f"two solver configs given ({config} and --solver "
                              f"{solver_option}); give one")
        path = config or solver_option
        if not path:
            raise ConfigError("no solver config: give CONFIG (or --solver CONFIG)")
        if snapshot and weights:
            raise ConfigError("give --snapshot (resume) or --weights (finetune), not both")
        if snapshot and root and not os.path.isfile(snapshot):  # rank 0 alone reads it
            raise ConfigError(f"--snapshot {snapshot}: no such file")
        param = read_solver_config(path)
        if level is not None:
            param.train_state.level = level
        param.train_state.stage.extend(split_list(stage))
        if snapshot:
            param.ClearField("weights")  # Caffe: a resumed run takes its weights from the state
        elif weights:
            del param.weights[:]
            # Paths given on the command line are relative to the working directory.
            param.weights.append(",".join(os.path.abspath(w) for w in split_list(weights)))
        if not root:
            param.ClearField("weights")  # rank 0 reads them; the ranks get its weights
        from ..parallel import parallel_solver

        logger.info("Initializing solver from %s", path)
        # Data-parallel: rank 0 restores --snapshot and broadcasts it, before solve().
        resume_now = snapshot if mpi.size > 1 else None
        solver = parallel_solver(param, resume=resume_now, solver_file=path)
        metrics = metrics_path(solver.param)
        if root:
            logger.info("Writing metrics to %s", metrics)
            solver.add_callback(MetricsCallback(metrics))
        line = ProgressLine(solver, sys.stderr) if progress else None
        if line:
            solver.add_callback(line)
        board = tensorboard_callback(tensorboard_dir) if root else None  # rank 0 writes
        if board:
            solver.add_callback(board)
        actions = SignalActions(sigint_effect, sighup_effect)
        solver.set_action_function(actions)
        try:
            with actions.installed():
                solver.solve(resume=None if resume_now else snapshot)
        finally:
            if line:
                line.close()
            if board:
                board.close()


def metrics_path(param):
    """`<snapshot_prefix>.metrics.jsonl`, beside the snapshots (a resumed run appends)."""
    return (param.snapshot_prefix or "caffelite") + METRICS_SUFFIX


def tensorboard_callback(logdir):
    """The TensorBoard callback for --tensorboard DIR (None without it)."""
    if not logdir:
        return None
    from ..tools.tensorboard import TensorBoardCallback

    logger.info("Writing TensorBoard events to %s", logdir)
    return TensorBoardCallback(logdir)
