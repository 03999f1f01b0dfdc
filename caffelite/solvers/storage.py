"""Storage faults while training, said in one line: which file, why (disk full, read-only,
a directory in the way), and which snapshot is the last complete one; plus the removal of
temporaries that a run killed while snapshotting left behind."""
import errno
import glob
import logging
import os
import re

from ..errors import SolverError

logger = logging.getLogger("caffelite")

_WHY = {errno.ENOSPC: "no space left on the device (disk full)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EISDIR: "a directory is in the way",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a file is in the way of its directory"}


def last_complete_snapshot(prefix):
    """The newest PREFIX_iter_N.solverstate whose weights file is there too, or None.
    Snapshots are written atomically, so a file that exists is whole."""
    found = []
    for state in glob.glob(glob.escape(prefix) + "_iter_*.solverstate"):
        match = re.search(r"_iter_(\d+)\.solverstate$", state)
        model = state[:-len(".solverstate")] + ".caffemodel"
        if match and os.path.isfile(state) and os.path.isfile(model):
            found.append((int(match.group(1)), state))
    return max(found)[1] if found else None


def write_failed(exc, path, prefix):
    """SolverError for an OSError writing `path` during training with snapshot_prefix
    `prefix`, naming the last complete snapshot (nothing is torn: files are replaced
    atomically, so every snapshot on disk is whole)."""
    why = _WHY.get(exc.errno) or exc.strerror or str(exc)
    if exc.errno == errno.EISDIR or os.path.isdir(path):
        why = "a directory is in the way"
    last = last_complete_snapshot(prefix) if prefix is not None else None
    if last:
        where = (f"the last complete snapshot, {last} (with its .caffemodel), is intact: "
                 f"resume with --snapshot {last}")
    else:
        where = "no complete snapshot had been written yet"
    return SolverError(f"cannot write {path}: {why}; {where}")


def remove_stale_temporaries(prefix):
    """Delete the temporaries of atomic writes of this prefix's snapshots (a run killed
    while snapshotting leaves `.PREFIX_iter_N.caffemodel.XXXX.tmp`); returns their paths."""
    directory = os.path.dirname(prefix) or "."
    pattern = os.path.join(glob.escape(directory),
                           "." + glob.escape(os.path.basename(prefix)) + "_iter_*.tmp")
    removed = []
    for path in sorted(glob.glob(pattern)):
        if re.search(r"_iter_\d+\.(caffemodel|solverstate)[^/]*\.tmp$", path):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    if removed:
        logger.info("Removed %d temporary file(s) left by an interrupted snapshot: %s",
                    len(removed), ", ".join(os.path.basename(p) for p in removed))
    return removed
