"""caffelite layers: every registered type, each with its description."""
from click.testing import CliRunner

import caffelite
from caffelite.cli import main


def test_layers_lists_every_type_with_a_description():
    result = CliRunner().invoke(main, ["layers"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == caffelite.layer_type_list()
    assert all(len(line.split(None, 1)) == 2 for line in lines), "a type without description"
    assert any(line.startswith("ReLU") and "max(x, 0)" in line for line in lines)
