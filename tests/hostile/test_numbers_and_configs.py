"""Numeric parameters Caffe would CHECK, lr policies checked when the solver is built, and
hostile YAML/JSON: each a one-line ConfigError/NetError/SolverError naming file and line."""
import re

import pytest
from click.testing import CliRunner

import caffelite
from caffelite.cli import main
from caffelite.errors import ConfigError, NetError, SolverError
from caffelite.formats.config import config_kind, parse_net_text, read_net_param
from caffelite.net import Net

IP = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
      'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { '
      'num_output: 2 weight_filler { %s } } }')


@pytest.mark.parametrize("filler,message", [
    ('type: "gaussian" std: -1', r"gaussian filler: std must not be negative, got -1"),
    ('type: "gaussian" std: nan', r"gaussian filler: std is nan; give a finite number"),
    ('type: "uniform" min: -inf', r"uniform filler: min is -inf; give a finite number"),
    ('type: "uniform" min: 2 max: 1', r"uniform filler needs min <= max \(min 2, max 1\)"),
    ('type: "constant" value: inf', r"constant filler: value is inf"),
    ('type: "gaussian" mean: nan', r"gaussian filler: mean is nan"),
])
def test_filler_numbers(filler, message):
    with pytest.raises(NetError, match=r"layer 'ip' \(InnerProduct\) weight_filler: " + message):
        Net(parse_net_text(IP % filler), phase="TRAIN")


def test_filler_std_zero_is_the_mean():
    net = Net(parse_net_text(IP % 'type: "gaussian" mean: 0.5 std: 0'), phase="TRAIN")
    assert (net.params["ip"][0].data == 0.5).all()


@pytest.mark.parametrize("param,message", [
    ("base: 3 shift: 1e30", r"base\^shift = inf does not fit a float32 \(base 3, shift 1e\+30"),
    ("base: 10 shift: 100", r"base\^shift = 1e\+100 does not fit a float32"),
    ("base: 10 scale: 3e38", r"ln\(base\)·scale = [\d.e+]+ does not fit a float32"),
])
def test_exp_overflowing_parameters(param, message):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
            f'layer {{ name: "e" type: "Exp" bottom: "x" top: "y" exp_param {{ {param} }} }}')
    with pytest.raises(NetError, match=r"layer 'e' \(Exp\): exp_param: " + message):
        Net(parse_net_text(text), phase="TRAIN")


SOLVER = """net_param {{
  layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
  layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
    inner_product_param {{ num_output: 1 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
  layer {{ name: "loss" type: "Reduction" bottom: "y" top: "loss" loss_weight: 1 }}
}}
max_iter: 10 {policy}
"""


@pytest.mark.parametrize("policy,message", [
    ('lr_policy: "poly" power: -1', r"lr_policy 'poly' needs power >= 0 \(got -1\)"),
    ('lr_policy: "inv" gamma: 0.1 power: -2', r"lr_policy 'inv' needs power >= 0"),
    ('lr_policy: "exp" gamma: 1e5', r"lr_policy 'exp' gives no finite learning rate at "
                                    r"iteration 10: base_lr 0\.01, gamma 100000"),
    ('lr_policy: "fixed" base_lr: nan', r"base_lr is nan; give a finite number"),
    ('lr_policy: "step" stepsize: 1 gamma: 1e38', r"lr_policy 'step' gives no finite learning "
                                                 r"rate at iteration 10 \(math range error\)"),
])
def test_lr_policy_checked_when_the_solver_is_built(tmp_path, policy, message):
    path = tmp_path / "solver.prototxt"
    base_lr = "" if "base_lr" in policy else "base_lr: 0.01 "
    path.write_text(SOLVER.format(policy=base_lr + policy))
    with pytest.raises(SolverError, match=r"solver\.prototxt: " + message):
        caffelite.get_solver(str(path))


def test_poly_past_max_iter_stays_at_zero(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER.format(policy='base_lr: 0.01 lr_policy: "poly" power: 0.5'))
    solver = caffelite.get_solver(str(path))
    solver.step(12)  # two steps past max_iter: (1 - 12/10)^0.5 would be NaN
    assert solver.iter == 12
    from caffelite.solvers.lr_policy import learning_rate
    assert learning_rate(solver.param, 12, 0)[0] == 0.0
    assert learning_rate(solver.param, 6, 0)[0] == pytest.approx(0.01 * 0.4 ** 0.5)


# -- YAML / JSON -----------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
MERGE_BOMB = "a0: &a0 {x: 1, y: 2}\n" + "".join(
    f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}]}}\n" for i in range(1, 40))

HOSTILE = {
    "esc.yaml": ("name: a\x1bb\n", r"YAML syntax error \(esc\.yaml:1\): unacceptable character "
                                   r"#x001b"),
    "nul.yaml": ("name: x\nlayer: \x00\n", r"YAML syntax error \(nul\.yaml:2\): unacceptable "
                                           r"character #x0000"),
    "deep.yaml": ("name: " + "[" * 5000 + "]" * 5000, r"deep\.yaml:1: nesting deeper than 64"),
    "deeper.yaml": ("name: " + "[" * 100000 + "]" * 100000, r"deeper\.yaml:1: nesting deeper"),
    "block.yaml": ("name:\n" + "- " * 100000 + "x\n", r"block\.yaml:2: nesting deeper than 64"),
    "deep.json": ('{"name": ' + "[" * 5000 + "]" * 5000 + "}", r"deep\.json:1: nesting deeper"),
    "deeper.json": ('{"name": ' + "[" * 100000 + "]" * 100000 + "}", r"deeper\.json:1: nesting"),
    "int.yaml": ("name: n\nforce_backward: !!int abc\n",
                 r"bad value 'abc' for the tag !!int \(int\.yaml:2\)"),
    "bool.yaml": ("force_backward: !!bool maybe\n",
                  r"bad value 'maybe' for the tag !!bool \(bool\.yaml:1\)"),
    "bomb.yaml": (BOMB, r"bomb\.yaml:\d+: more than 250000 values, counting each use of an "
                        r"alias"),
    "merge.yaml": (MERGE_BOMB, r"merge\.yaml:\d+: more than 250000 values"),
    "self.yaml": ("a: &a [*a]\n", r"self\.yaml:1: alias \*a names no complete anchor"),
    "flat.yaml": ("layer:\n- name: a\n  top: [" + ", ".join(["x"] * 3_500_000) + "]\n",  # 10 MB
                  r"flat\.yaml:3: more than 250000 values"),
    "two.yaml": ("name: a\n---\nname: b\n", r"two\.yaml:2: a second YAML document"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_and_json_get_one_line(tmp_path, name):
    text, message = HOSTILE[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_net_param(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    assert re.search(message, text.replace(f"{tmp_path}/", "")), text
    assert config_kind(text, name.rsplit(".", 1)[1]) == "net"  # sniffing never raises


def test_oversized_config(tmp_path, monkeypatch):
    monkeypatch.setenv("CAFFELITE_MAX_CONFIG_BYTES", "1000")
    for name in ("big.yaml", "big.json", "big.prototxt"):
        path = tmp_path / name
        path.write_text("# padding\n" * 200)
        with pytest.raises(ConfigError, match=r"big\.\w+: 2000 characters, more than the 1000 "
                                              r"a config may have"):
            read_net_param(path)


def test_merge_keys_still_merge(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("layer:\n- &relu {name: a, type: ReLU, bottom: x, top: x}\n"
                    "- {<<: *relu, name: b}\n- <<: [{type: Sigmoid}, *relu]\n  name: c\n")
    layers = read_net_param(path).layer
    assert [(lp.name, lp.type) for lp in layers] == [("a", "ReLU"), ("b", "ReLU"),
                                                     ("c", "Sigmoid")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["deeper.json", "bomb.yaml", "esc.yaml"])
def test_inspect_hostile_config_one_line(tmp_path, name):
    path = tmp_path / name
    path.write_text(HOSTILE[name][0])
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.output.startswith("caffelite: error:") and \
            result.output.count("\n") == 1, result.output


@pytest.mark.parametrize("text,message", [
    ('snapshot_prefix: "snap\\000shot"', r"s\.prototxt: snapshot_prefix holds a NUL character"),
    ('net_param { layer { name: "d" type: "Data" data_param { source: "a\\0b" } } }',
     r"s\.prototxt: net_param\.layer 'd'\.data_param\.source holds a NUL character"),
])
def test_nul_in_a_string_field(text, message):
    from caffelite.formats.config import parse_solver_text

    with pytest.raises(ConfigError, match=message):
        parse_solver_text(text, "s.prototxt")


@pytest.mark.parametrize("numbers,message", [
    ("momentum: 1", r"Adam's momentum \(β1\) must lie in \[0, 1\), got 1"),
    ("momentum: 0.9 momentum2: 1.5", r"Adam's momentum2 \(β2\) must lie in \[0, 1\), got 1\.5"),
])
def test_adam_betas(tmp_path, numbers, message):
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER.format(policy=f'base_lr: 0.01 lr_policy: "fixed" type: "Adam" '
                                         f'{numbers}'))
    with pytest.raises(SolverError, match=message):
        caffelite.get_solver(str(path))


@pytest.mark.parametrize("name,text", [
    ("c.prototxt", 'layer { name: "clip" type: "Clip" clip_param { min: -1 } }'),
    ("c.yaml", "layer:\n- name: clip\n  type: Clip\n  clip_param: {min: -1}\n"),
    ("c.json", '{"layer": [{"name": "clip", "type": "Clip", "clip_param": {"min": -1}}]}'),
])
def test_missing_required_field(name, text):
    """Caffe's text parser refuses a message without its required fields; so do we."""
    with pytest.raises(ConfigError, match=rf"{re.escape(name)}: missing required field\(s\): "
                                          r"clip_param\.max of layer 'clip'"):
        parse_net_text(text, name)


@pytest.mark.parametrize("name,text,message", [
    ("k.json", '{"na\\nme": 1}', r"unknown field 'na\\nme' in NetParameter"),
    ("l.json", '{"layer": [{"name": "a\\u001bb", "typo": 1}]}', r"in layer 'a\\x1bb'"),
    ("k.yaml", '"a\\nb": 1\n', r"unknown field 'a\\nb'"),
])
def test_errors_quote_control_characters(name, text, message):
    """A name with a newline or an escape in it is quoted, so the error stays one line."""
    with pytest.raises(ConfigError, match=message) as info:
        parse_net_text(text, name)
    assert str(info.value).isprintable()
