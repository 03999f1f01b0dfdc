"""Learning-rate policies against their closed forms (SGDSolver::GetLearningRate)."""
import math

import numpy as np
import pytest

from caffelite.errors import SolverError
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers.lr_policy import check_lr_policy, learning_rate


def solver_param(**fields):
    stepvalue = fields.pop("stepvalue", [])
    param = pb.SolverParameter(**fields)
    param.stepvalue.extend(stepvalue)
    return param


def rates(param, iters, current_step=0):
    out = []
    for it in iters:
        rate, current_step = learning_rate(param, it, current_step)
        out.append(rate)
    return np.array(out), current_step


ITERS = [0, 1, 9, 10, 11, 99, 100, 2500, 9999]


@pytest.mark.parametrize("policy,fields,closed_form", [
    ("fixed", {}, lambda it, p: p.base_lr),
    ("step", {"gamma": 0.1, "stepsize": 10}, lambda it, p: p.base_lr * p.gamma ** (it // 10)),
    ("exp", {"gamma": 0.999}, lambda it, p: p.base_lr * p.gamma ** it),
    ("inv", {"gamma": 1e-4, "power": 0.75},
     lambda it, p: p.base_lr * (1 + p.gamma * it) ** -p.power),
    ("poly", {"power": 2.0, "max_iter": 10000},
     lambda it, p: p.base_lr * (1 - it / 10000) ** 2),
    ("sigmoid", {"gamma": -0.01, "stepsize": 100},
     lambda it, p: p.base_lr / (1 + math.exp(-p.gamma * (it - 100)))),
])
def test_policy_closed_form(policy, fields, closed_form):
    param = solver_param(lr_policy=policy, base_lr=0.01, **fields)
    check_lr_policy(param)
    got, _ = rates(param, ITERS)
    expected = np.array([closed_form(it, param) for it in ITERS])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_inv_matches_caffe_readme_log():
    # LeNet's recipe logs "Iteration 100, lr = 0.00992565"
    param = solver_param(lr_policy="inv", base_lr=0.01, gamma=1e-4, power=0.75)
    rate, _ = learning_rate(param, 100, 0)
    assert f"{np.float32(rate):g}" == "0.00992565"


def test_step_sets_current_step():
    param = solver_param(lr_policy="step", base_lr=1.0, gamma=0.5, stepsize=3)
    _, current_step = learning_rate(param, 7, 0)
    assert current_step == 2


def test_multistep_steps_at_the_stepvalues():
    param = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[5, 8])
    got, current_step = rates(param, range(12))
    expected = [1.0] * 5 + [0.5] * 3 + [0.25] * 4
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert current_step == 2


def test_multistep_rises_at_most_one_step_per_call():
    # Caffe's quirk: resuming far past several stepvalues climbs one step per iteration.
    param = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[5, 8, 9])
    got, current_step = rates(param, [100, 101, 102, 103])
    np.testing.assert_allclose(got, [0.5, 0.25, 0.125, 0.125], rtol=1e-12)
    assert current_step == 3


def test_unknown_policy_suggests_the_closest():
    with pytest.raises(SolverError, match="did you mean 'step'"):
        check_lr_policy(solver_param(lr_policy="stpe", base_lr=0.1))


def test_unset_policy_lists_the_choices():
    with pytest.raises(SolverError, match="lr_policy is not set.*multistep"):
        check_lr_policy(solver_param(base_lr=0.1))


@pytest.mark.parametrize("fields,message", [
    ({"lr_policy": "step", "stepsize": 0, "gamma": 0.1}, "stepsize > 0"),
    ({"lr_policy": "inv", "gamma": -1.0, "power": 0.75}, "gamma >= 0"),
    ({"lr_policy": "poly", "power": 1.0}, "max_iter > 0"),
])
def test_bad_policy_parameters(fields, message):
    with pytest.raises(SolverError, match=message):
        check_lr_policy(solver_param(base_lr=0.1, **fields))
