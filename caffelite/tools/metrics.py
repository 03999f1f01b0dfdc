"""Training metrics: a JSON-lines file written during training, and readers for it and for
logs in Caffe's own format (the lines tools/extra/parse_log.py reads).

Each metrics line is one record:
    {"phase": "train", "iter": 100, "seconds": 12.3, "lr": 0.0099, "loss": 0.26}
    {"phase": "test", "net": 0, "iter": 500, "seconds": 60.1, "accuracy": 0.98, "loss": 0.06}
"""
import errno
import json
import logging
import os
import re
import time
from datetime import datetime
from pathlib import Path

from ..errors import CaffeliteError

METRICS_SUFFIX = ".metrics.jsonl"
logger = logging.getLogger("caffelite")


class MetricsWriter:
    """Appends records to a JSON-lines file; a resumed run appends to the same file.

    Opening it repairs what a crash can leave: a torn last line (a write cut short) is cut
    off, and a symbolic link at the path is replaced by a file of its own (as snapshots
    replace theirs), so a run never writes through a link into another file."""

    def __init__(self, path, start_seconds=0.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():  # say so at the start, not at the first record
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(self.path))
            _own_file(self.path)
            _cut_torn_line(self.path)
        except OSError as exc:
            raise self._failed(exc) from None
        self._t0 = time.perf_counter() - start_seconds

    @staticmethod
    def last_seconds(path):
        """The 'seconds' of the last record in an existing file (to continue the clock)."""
        records = read_metrics(path) if Path(path).is_file() else []
        return records[-1].get("seconds", 0.0) if records else 0.0

    def write(self, phase, iteration, outputs, **extra):
        record = {"phase": phase, "iter": int(iteration),
                  "seconds": round(time.perf_counter() - self._t0, 3), **extra}
        record.update({name: float(value) for name, value in outputs.items()})
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc):
        from ..solvers.storage import write_failed

        name = str(self.path)
        prefix = name[:-len(METRICS_SUFFIX)] if name.endswith(METRICS_SUFFIX) else None
        return write_failed(exc, name, prefix)


def _own_file(path):
    """Replace a symbolic link at path by a regular file holding what it pointed to."""
    if not path.is_symlink():
        return
    from ..formats.binary import atomic_write

    target = os.path.realpath(path)
    content = Path(target).read_bytes() if os.path.isfile(target) else b""
    atomic_write(path, content)
    logger.warning("%s was a symbolic link to %s: replaced by a file of its own (the target is "
                   "left as it was)", path, target)


def _cut_torn_line(path):
    """Drop a last line without its newline (a write cut short by a crash or a full disk)."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if not size:
            return
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail.endswith(b"\n"):
            return
        keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        f.truncate(keep)
    logger.warning("%s: cut a torn last line (%d bytes) left by an interrupted write", path,
                   size - keep)


def read_metrics(path):
    """Records of a metrics file, in order; one clear error for a malformed line. A torn
    last line (no newline: a write cut short, or one in progress) is left out."""
    records = []
    with open(path) as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise CaffeliteError(f"{path}:{number}: not a caffelite metrics line") from None
    return records


_GLOG_TIME = re.compile(r"^[IWEF](\d{4}) (\d\d:\d\d:\d\d\.\d+)")
_ITERATION = re.compile(r"Iteration (\d+)")
_LR = re.compile(r"lr = ([-+.\deE]+|nan|inf)")
_OUTPUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = ([-+.\deE]+|nan|inf|-inf)")
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")


def parse_caffe_log(path):
    """Records (as read_metrics gives) from a log in Caffe's format, as parse_log.py reads it."""
    records, t0, iteration, lr, test_net = [], None, 0, None, 0
    current = {}
    with open(path, errors="replace") as f:
        for line in f:
            seconds = _log_seconds(line)
            if seconds is not None and t0 is None:
                t0 = seconds
            elapsed = (seconds - t0) if seconds is not None and t0 is not None else 0.0
            testing = _TESTING.search(line)
            if testing:
                iteration, test_net = int(testing.group(1)), int(testing.group(2))
                continue
            found = _ITERATION.search(line)
            if found:
                iteration = int(found.group(1))
            found = _LR.search(line)
            if found:
                lr = float(found.group(1))
                if current.get(("train", iteration)) is not None:
                    current[("train", iteration)]["lr"] = lr
            found = _OUTPUT.search(line)
            if found:
                phase = found.group(1).lower()
                key = (phase, iteration) if phase == "train" else (phase, iteration, test_net)
                if key not in current:
                    record = {"phase": phase, "iter": iteration, "seconds": round(elapsed, 3)}
                    if phase == "test":
                        record["net"] = test_net
                    elif lr is not None:
                        record["lr"] = lr
                    current[key] = record
                    records.append(record)
                current[key][found.group(3)] = float(found.group(4))
    return records


def _log_seconds(line):
    """Seconds since the start of the year from a glog prefix (I1126 14:55:01.123456)."""
    found = _GLOG_TIME.match(line)
    if not found:
        return None
    stamp = datetime.strptime(f"2000{found.group(1)} {found.group(2)[:15]}", "%Y%m%d %H:%M:%S.%f")
    return (stamp - datetime(2000, 1, 1)).total_seconds()


def read_run(path):
    """Records from a metrics file, a Caffe-format log, or a directory holding a metrics file."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(f"*{METRICS_SUFFIX}"))
        if not found:
            raise CaffeliteError(f"{path}: no *{METRICS_SUFFIX} file in this directory")
        path = found[-1]
    if not path.exists():
        raise CaffeliteError(f"{path}: no such file")
    if path.name.endswith(".jsonl"):
        return read_metrics(path)
    records = parse_caffe_log(path)
    if not records:
        raise CaffeliteError(f"{path}: neither a caffelite metrics file nor a log in Caffe's "
                             "format (no 'Train/Test net output' lines)")
    return records
