"""Storage faults while training: a full disk, a read-only remount, a directory in the way
of a snapshot or the metrics file. Each is one line naming the file, why, and the last
complete snapshot (which is intact and resumes); nothing is torn and no temporary stays.
Temporaries left by a run killed while snapshotting are removed at the next start, and a
symbolic link at the metrics path is replaced like a snapshot's."""
import contextlib
import logging
import os
import shutil
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from caffelite.cli import main
from caffelite.errors import SolverError
from caffelite.solvers import Solver
from tests.solvers.nets import mnist_net, mnist_net_text, solver_param


def make_solver(directory, **fields):
    values = dict(momentum=0.9, max_iter=40, snapshot=2, snapshot_prefix=str(directory / "mlp"))
    values.update(fields)
    return Solver(solver_param(mnist_net(dropout=False), **values))


def leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def resumes(state, directory):
    """The named snapshot restores into a fresh solver (it is whole)."""
    solver = make_solver(directory)
    solver.restore(state)
    return solver.iter


def one_error_line(result):
    lines = [line for line in result.output.splitlines() if line.startswith("caffelite: error:")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def write_cli_config(directory, **fields):
    (directory / "net.prototxt").write_text(mnist_net_text(dropout=False))
    values = {"net": '"net.prototxt"', "base_lr": 0.01, "momentum": 0.9,
              "lr_policy": '"fixed"', "display": 1, "max_iter": 40, "snapshot": 2,
              "snapshot_prefix": '"mlp"', "random_seed": 1701, **fields}
    lines = [f"{k}: {v}" for k, v in values.items()]
    (directory / "solver.prototxt").write_text("\n".join(lines) + "\n")
    return str(directory / "solver.prototxt")


@contextlib.contextmanager
def working_directory(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# -- a directory in the way -------------------------------------------------------------------
def test_a_directory_where_a_snapshot_goes(tmp_path):
    (tmp_path / "mlp_iter_6.caffemodel").mkdir()
    solver = make_solver(tmp_path)
    with pytest.raises(SolverError) as error:
        solver.solve()
    message = str(error.value)
    assert message.startswith(f"cannot write {tmp_path / 'mlp_iter_6.caffemodel'}: a "
                              "directory is in the way; the last complete snapshot, "
                              f"{tmp_path / 'mlp_iter_4.solverstate'}")
    assert "is intact: resume with --snapshot" in message and "\n" not in message
    assert not leftovers(tmp_path)
    assert resumes(tmp_path / "mlp_iter_4.solverstate", tmp_path) == 4


def test_a_directory_where_the_metrics_file_goes_is_one_cli_line(tmp_path):
    config = write_cli_config(tmp_path)
    (tmp_path / "mlp.metrics.jsonl").mkdir()
    with working_directory(tmp_path):
        result = CliRunner().invoke(main, ["train", config])
    line = one_error_line(result)
    assert "cannot write mlp.metrics.jsonl: a directory is in the way" in line
    assert "no complete snapshot had been written yet" in line
    assert "Iteration 0" not in result.output  # said before training starts


def test_a_directory_where_a_snapshot_goes_is_one_cli_line(tmp_path):
    config = write_cli_config(tmp_path)
    (tmp_path / "mlp_iter_4.solverstate").mkdir()
    with working_directory(tmp_path):
        result = CliRunner().invoke(main, ["train", config, "--quiet"])
    line = one_error_line(result)
    assert "cannot write mlp_iter_4.solverstate: a directory is in the way" in line
    assert "the last complete snapshot, mlp_iter_2.solverstate" in line


# -- temporaries and links --------------------------------------------------------------------
def test_stale_temporaries_of_the_prefix_are_removed_at_start(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="caffelite")
    ours = [".mlp_iter_4.caffemodel.k2j3h4.tmp", ".mlp_iter_4.solverstate.caffelite.json.x1.tmp",
            ".mlp_iter_4.solverstate.a8b.tmp"]
    others = [".other_iter_4.caffemodel.k2j3h4.tmp", "mlp_notes.tmp", ".mlp_iter_4.caffemodel"]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"x" * 100)
    make_solver(tmp_path, max_iter=1, snapshot=0).solve()
    assert sorted(leftovers(tmp_path)) == sorted(n for n in others if n.endswith(".tmp"))
    assert (tmp_path / ".mlp_iter_4.caffemodel").exists()
    logged = [r.getMessage() for r in caplog.records if "temporary file" in r.getMessage()]
    assert logged and "Removed 3 temporary file(s)" in logged[0]


def test_a_symlink_at_the_metrics_path_is_replaced_not_followed(tmp_path, caplog):
    config = write_cli_config(tmp_path, max_iter=2)
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text('{"phase": "train", "iter": 0, "seconds": 0.5, "loss": 1.0}\n')
    os.symlink(elsewhere, tmp_path / "mlp.metrics.jsonl")
    with working_directory(tmp_path):
        result = CliRunner().invoke(main, ["train", config])
    assert result.exit_code == 0, result.output
    assert elsewhere.read_text().count("\n") == 1  # untouched
    metrics = tmp_path / "mlp.metrics.jsonl"
    assert not metrics.is_symlink()
    assert metrics.read_text().startswith(elsewhere.read_text())  # its history kept
    assert "was a symbolic link" in result.output


# -- a small disk ---------------------------------------------------------------------------
@contextlib.contextmanager
def small_disk(tmp_path, size):
    """A size-limited tmpfs at tmp_path/disk (root and mount(8) needed, else skip)."""
    directory = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root and mount(8)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


@pytest.mark.timeout(120)
def test_a_full_disk_names_the_file_and_the_intact_snapshot(tmp_path):
    with small_disk(tmp_path, "400k") as disk:
        solver = make_solver(disk)
        with pytest.raises(SolverError) as error:
            solver.solve()
        message = str(error.value)
        assert "no space left on the device (disk full)" in message, message
        last = message.split("the last complete snapshot, ")[1].split(" (with")[0]
        assert os.path.dirname(last) == str(disk) and not leftovers(disk)
        copy = tmp_path / "copy"
        copy.mkdir()
        for suffix in (".solverstate", ".caffemodel", ".solverstate.caffelite.json"):
            base = last[:-len(".solverstate")]
            shutil.copy(base + suffix, copy / os.path.basename(base + suffix))
        iteration = int(last.rsplit("_iter_", 1)[1].split(".")[0])
        assert resumes(copy / os.path.basename(last), copy) == iteration


@pytest.mark.timeout(120)
def test_a_full_disk_is_one_cli_line(tmp_path):
    with small_disk(tmp_path, "400k") as disk:
        config = write_cli_config(disk)
        with working_directory(disk):
            result = CliRunner().invoke(main, ["train", config, "--quiet"])
        line = one_error_line(result)
        assert "no space left on the device (disk full)" in line
        assert "the last complete snapshot, mlp_iter_" in line and not leftovers(disk)


def fill(directory):
    """Write a file until the disk is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


@pytest.mark.timeout(120)
def test_a_full_disk_under_the_log_file_is_one_warning_not_tracebacks(tmp_path):
    with small_disk(tmp_path, "400k") as disk:
        config = write_cli_config(disk)
        fill(disk)
        with working_directory(disk):
            result = CliRunner().invoke(main, ["train", config, "--log", "train.log"])
        line = one_error_line(result)
        assert "no space left on the device (disk full)" in line
        assert "Logging error" not in result.output
        warnings = [line for line in result.output.splitlines()
                    if line.startswith("caffelite: warning: cannot write the log")]
        assert len(warnings) == 1, result.output
        assert "No space left on device" in warnings[0]


class RemountReadOnly:
    def __init__(self, directory, at):
        self.directory, self.at, self.solver = directory, at, None

    def on_start(self):
        if self.solver.iter == self.at:
            subprocess.run(["mount", "-o", "remount,ro", str(self.directory)], check=True)


@pytest.mark.timeout(120)
def test_a_read_only_remount_mid_run(tmp_path):
    with small_disk(tmp_path, "4m") as disk:
        solver = make_solver(disk)
        remount = RemountReadOnly(disk, at=5)
        remount.solver = solver
        solver.add_callback(remount)
        with pytest.raises(SolverError) as error:
            solver.solve()
        message = str(error.value)
        assert f"cannot write {disk / 'mlp_iter_6.caffemodel'}: the file system is read-only"\
            in message
        assert f"the last complete snapshot, {disk / 'mlp_iter_4.solverstate'}" in message
