"""Caffe's learning-rate policies: rate = base_lr · f(iter) for fixed, step, exp, inv, multistep,
poly, sigmoid (SGDSolver::GetLearningRate)."""
import math

from ..errors import SolverError
from ..registry import LR_POLICIES, suggest

_FLT_MAX = 3.4028234663852886e38

# Each policy is `policy(param, it, current_step) -> (rate, current_step)`: `it` is the number of
# updates done so far (the iter *before* the increment) and current_step is the solver state that
# `step` and `multistep` advance (it is saved in the .solverstate).


@LR_POLICIES.register("fixed")
def fixed(param, it, current_step):
    """base_lr."""
    return param.base_lr, current_step


@LR_POLICIES.register("step")
def step(param, it, current_step):
    """base_lr · gamma^floor(iter / stepsize)."""
    current_step = it // param.stepsize
    return param.base_lr * math.pow(param.gamma, current_step), current_step


@LR_POLICIES.register("exp")
def exp(param, it, current_step):
    """base_lr · gamma^iter."""
    return param.base_lr * math.pow(param.gamma, it), current_step


@LR_POLICIES.register("inv")
def inv(param, it, current_step):
    """base_lr · (1 + gamma·iter)^(-power)."""
    return param.base_lr * math.pow(1.0 + param.gamma * it, -param.power), current_step


@LR_POLICIES.register("multistep")
def multistep(param, it, current_step):
    """base_lr · gamma^current_step; current_step rises by at most 1 per call (Caffe's quirk)."""
    if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
        current_step += 1
    return param.base_lr * math.pow(param.gamma, current_step), current_step


@LR_POLICIES.register("poly")
def poly(param, it, current_step):
    """base_lr · (1 - iter/max_iter)^power; past max_iter (more steps asked of the solver) the
    base stays 0 rather than a negative number to a fractional power (NaN in Caffe)."""
    return param.base_lr * math.pow(max(0.0, 1.0 - it / param.max_iter), param.power), \
        current_step


@LR_POLICIES.register("sigmoid")
def sigmoid(param, it, current_step):
    """base_lr / (1 + exp(-gamma·(iter - stepsize)))."""
    z = -param.gamma * (it - param.stepsize)
    # exp overflows for a far-away step: the rate is then 0, as Caffe's float exp gives inf -> 0.
    return param.base_lr / (1.0 + (math.exp(z) if z < 700 else math.inf)), current_step


def learning_rate(param, it, current_step):
    """(rate, new current_step) of `param.lr_policy` at update `it`; a SolverError when the
    parameters give no finite rate there."""
    try:
        rate, step = LR_POLICIES.get(param.lr_policy)(param, it, current_step)
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        rate, step = math.nan, current_step
        detail = f" ({exc})"
    else:
        detail = ""
    if not abs(rate) <= _FLT_MAX:  # NaN too; the rate scales float32 gradients
        raise SolverError(f"lr_policy '{param.lr_policy}' gives no finite learning rate at "
                          f"iteration {it}{detail}: {_policy_numbers(param)}")
    return rate, step


def _policy_numbers(param):
    names = ("base_lr", "gamma", "power", "stepsize", "max_iter")
    return ", ".join(f"{name} {getattr(param, name):g}" for name in names)


def did_you_mean(name, names):
    """"; did you mean 'x'?": a case-only difference first ('sgd' -> 'SGD'), then the closest."""
    by_lower = {n.lower(): n for n in names}
    if str(name).lower() in by_lower:
        return f"; did you mean '{by_lower[str(name).lower()]}'?"
    return suggest(name, names)


def check_lr_policy(param, where="solver"):
    """SolverError for an unknown policy or parameters Caffe would reject mid-training."""
    policy = param.lr_policy
    if not policy:
        raise SolverError(f"{where}: lr_policy is not set; choose one of "
                          f"{', '.join(LR_POLICIES.names())}")
    if policy not in LR_POLICIES:
        raise SolverError(f"{where}: unknown lr_policy '{policy}'"
                          f"{did_you_mean(policy, LR_POLICIES.names())}")
    if policy == "step" and param.stepsize <= 0:
        raise SolverError(f"{where}: lr_policy 'step' needs stepsize > 0 (got {param.stepsize})")
    if policy in ("step", "exp", "inv") and param.gamma < 0:
        raise SolverError(f"{where}: lr_policy '{policy}' needs gamma >= 0 (got {param.gamma})")
    if policy == "poly" and param.max_iter <= 0:
        raise SolverError(f"{where}: lr_policy 'poly' needs max_iter > 0")
    if policy in ("poly", "inv") and not param.power >= 0:
        # A negative power makes the rate grow without bound (poly: infinite at max_iter,
        # where the final snapshot records it).
        raise SolverError(f"{where}: lr_policy '{policy}' needs power >= 0 (got "
                          f"{param.power:g})")
    for name in ("base_lr", "gamma", "power"):
        if not math.isfinite(getattr(param, name)):
            raise SolverError(f"{where}: {name} is {getattr(param, name)}; give a finite number")
    _check_rates(param, where)


def _check_rates(param, where):
    """The rate at the first and last iteration (and each multistep boundary) is finite: exp
    with gamma > 1 overflows long before max_iter, a step policy's gamma^k may too."""
    its = {0, max(0, param.max_iter)}
    if param.lr_policy == "step" and param.stepsize > 0:
        its.add(max(0, param.max_iter) // param.stepsize * param.stepsize)
    steps = len(param.stepvalue) if param.lr_policy == "multistep" else 0
    for it in sorted(its):
        try:
            learning_rate(param, it, steps if it else 0)
        except SolverError as exc:
            raise SolverError(f"{where}: {exc}; check the lr policy's parameters") from None
