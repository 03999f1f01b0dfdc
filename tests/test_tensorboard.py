"""`caffelite train --tensorboard DIR`: the event files read back with a reader written here
(TFRecord framing with its masked CRC-32C, and the Event/Summary protobuf wire format decoded
by hand), compared with the metrics file the same run writes."""
import struct
import sys

import pytest

from caffelite.errors import CaffeliteError
from caffelite.tools.metrics import read_metrics
from tests.test_cli_train import train, workdir  # noqa: F401  (the fixture and the runner)

pytest.importorskip("tensorboardX", reason="tensorboardX (the tensorboard extra) not installed")


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc32c_table()


def masked_crc(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    """The payloads of a TFRecord file, each CRC checked."""
    data, at, out = path.read_bytes(), 0, []
    while at < len(data):
        (length,), (length_crc,) = struct.unpack_from("<Q", data, at), \
            struct.unpack_from("<I", data, at + 8)
        assert length_crc == masked_crc(data[at:at + 8])
        payload = data[at + 12:at + 12 + length]
        assert struct.unpack_from("<I", data, at + 12 + length)[0] == masked_crc(payload)
        out.append(payload)
        at += 16 + length
    return out


def fields(message):
    """{field number: [values]} of a protobuf message (varint, 64-bit, bytes, 32-bit)."""
    out, at = {}, 0
    while at < len(message):
        key, at = varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(message, at)
        elif wire == 1:
            value, at = message[at:at + 8], at + 8
        elif wire == 2:
            size, at = varint(message, at)
            value, at = message[at:at + size], at + size
        elif wire == 5:
            value, at = message[at:at + 4], at + 4
        else:
            raise AssertionError(f"wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def scalars(logdir):
    """{tag: {step: value}} of every event file under logdir (Event: step = 2, summary = 5;
    Summary: value = 1; Value: tag = 1, simple_value = 2)."""
    out = {}
    files = sorted(logdir.rglob("events.out.tfevents.*"))
    assert files, f"no event files under {logdir}"
    for path in files:
        for payload in records(path):
            event = fields(payload)
            step = event.get(2, [0])[0]
            for summary in event.get(5, []):
                for value in fields(summary).get(1, []):
                    value = fields(value)
                    tag = value[1][0].decode()
                    out.setdefault(tag, {})[step] = struct.unpack("<f", value[2][0])[0]
    return out


@pytest.mark.timeout(120)
def test_train_writes_scalars_tensorboard_reads(workdir):  # noqa: F811
    result = train("conf/solver.prototxt", "--quiet", "--tensorboard", "tb")
    assert result.exit_code == 0, result.output
    tags = scalars(workdir / "tb")
    assert {"train/loss", "train/smoothed_loss", "train/lr", "test/accuracy",
            "test/loss"} <= set(tags)
    metrics = read_metrics(workdir / "snap" / "tiny.metrics.jsonl")
    train_rows = [r for r in metrics if r["phase"] == "train"]
    test_rows = [r for r in metrics if r["phase"] == "test"]
    assert sorted(tags["train/loss"]) == [r["iter"] for r in train_rows] == [0, 5, 10, 15]
    for r in train_rows:
        for tag, key in (("train/loss", "loss"), ("train/lr", "lr"),
                         ("train/smoothed_loss", "smoothed_loss")):
            assert tags[tag][r["iter"]] == pytest.approx(r[key], rel=1e-6)
    assert sorted(tags["test/accuracy"]) == [0, 10, 20]
    for r in test_rows:
        assert tags["test/accuracy"][r["iter"]] == pytest.approx(r["accuracy"], rel=1e-6)
        assert tags["test/loss"][r["iter"]] == pytest.approx(r["loss"], rel=1e-6)


def test_callback_names_test_nets_and_vector_outputs(tmp_path):
    from caffelite.tools.tensorboard import TensorBoardCallback

    board = TensorBoardCallback(tmp_path / "tb")
    board.on_display(3, 0.5, {"loss": 0.25, "probs": [0.1, 0.9]}, 0.01)
    board.on_test(4, [{"accuracy": 0.75}, {"accuracy": 0.5}])
    board.close()
    tags = scalars(tmp_path / "tb")
    assert tags["train/probs_1"] == {3: pytest.approx(0.9)}
    assert tags["test/accuracy"] == {4: 0.75} and tags["test1/accuracy"] == {4: 0.5}


def test_missing_tensorboardx_is_one_clear_error(tmp_path, monkeypatch):
    from caffelite.tools import tensorboard

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(CaffeliteError, match=r'pip install "caffelite\[tensorboard\]"'):
        tensorboard.TensorBoardCallback(tmp_path)


def test_train_without_tensorboardx_says_what_to_install(workdir, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    result = train("conf/solver.prototxt", "--quiet", "--tensorboard", "tb")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        'caffelite: error: TensorBoard logging needs tensorboardX: '
        'pip install "caffelite[tensorboard]"']
