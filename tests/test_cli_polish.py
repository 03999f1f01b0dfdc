"""One clear line for what used to print a usage block or a nonsense number: `caffelite
inspect DIRECTORY`, and a NaN label reaching a loss or accuracy layer."""
import numpy as np
import pytest
from click.testing import CliRunner

from caffelite import Net
from caffelite.cli import main
from caffelite.errors import CaffeliteError


def test_inspect_a_directory_is_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"caffelite: error: {tmp_path} is a directory; give one file (a net or solver config, "
        ".caffemodel, .solverstate, .binaryproto or .h5)"]


LABEL_LAYERS = {
    "SoftmaxWithLoss": "",
    "Accuracy": "",
    "HingeLoss": "",
    "MultinomialLogisticLoss": "",
    "InfogainLoss": ' bottom: "H"',
}


def label_net(tmp_path, layer_type):
    extra = LABEL_LAYERS[layer_type]
    h_input = ('layer { name: "H" type: "Input" top: "H" input_param { shape { dim: 1 dim: 1 '
               'dim: 3 dim: 3 } } }') if extra else ""
    path = tmp_path / "net.prototxt"
    path.write_text(f"""
        layer {{ name: "in" type: "Input" top: "scores" top: "label"
                input_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 2 }} }} }}
        {h_input}
        layer {{ name: "judge" type: "{layer_type}" bottom: "scores" bottom: "label"{extra}
                top: "out" }}""")
    net = Net(str(path), "TEST")
    net.blobs["scores"].data[...] = np.full((2, 3), 1 / 3, np.float32)
    if extra:
        net.blobs["H"].data[...] = np.eye(3, dtype=np.float32)
    return net


@pytest.mark.parametrize("layer_type", list(LABEL_LAYERS))
@pytest.mark.parametrize("label, message", [
    (np.nan, "label NaN is not a class index in [0, 3) (the data source or a layer below "
             "produced a NaN label)"),
    (np.inf, "label inf is not a class index in [0, 3)"),
    (7.0, "label 7 out of range [0, 3)"),
], ids=["nan", "inf", "seven"])
def test_a_bad_label_is_named_as_the_data_holds_it(tmp_path, layer_type, label, message):
    net = label_net(tmp_path, layer_type)
    net.blobs["label"].data[...] = [1, label]
    with pytest.raises(CaffeliteError) as error:
        net.forward()
    assert message in str(error.value) and "judge" in str(error.value)
    assert "-9223372036854775808" not in str(error.value)


def test_control_characters_from_a_damaged_file_are_escaped_in_the_error_line(tmp_path,
                                                                             monkeypatch):
    """A .solverstate naming a weights file with ESC and NUL in it: the error line shows them
    as escapes instead of sending them to the terminal."""
    from pathlib import Path

    import caffelite
    from caffelite.proto import caffelite_pb2 as pb

    config = Path(__file__).resolve().parents[1] / "configs" / "lenet" / "lenet.yaml"
    monkeypatch.chdir(tmp_path)
    solver = caffelite.get_solver(str(config))
    _, state_path = solver.snapshot()
    state = pb.SolverState.FromString(Path(state_path).read_bytes())
    state.learned_net = "w\x1b[2J\x00.caffemodel"
    Path(state_path).write_bytes(state.SerializeToString())
    result = CliRunner().invoke(main, ["train", str(config), "--snapshot", state_path])
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("caffelite: error: ") and "w\\x1b[2J\\x00.caffemodel" in line
    assert "\x1b" not in result.output and "\x00" not in result.output
