"""Training curves: train loss, test loss and accuracy, and lr against iterations or seconds."""
from ..errors import CaffeliteError


def _series(records, phase, name, x):
    points = [(r[x], r[name]) for r in records if r.get("phase") == phase and name in r]
    return [p[0] for p in points], [p[1] for p in points]


def output_names(records, phase):
    skip = {"phase", "iter", "seconds", "lr", "net"}
    names = []
    for r in records:
        if r.get("phase") == phase:
            names += [k for k in r if k not in skip and k not in names]
    return names


def plot_curves(records, path, x="iter", title=None):
    """Write a PNG (or any format matplotlib knows by extension) with three panels."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CaffeliteError("plotting needs matplotlib: pip install 'caffelite[plot]'") from None
    if x not in ("iter", "seconds"):
        raise CaffeliteError(f"--x must be 'iter' or 'seconds', not '{x}'")
    fig, (ax_loss, ax_test, ax_lr) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for name in output_names(records, "train"):
        ax_loss.plot(*_series(records, "train", name, x), label=f"train {name}")
    for name in output_names(records, "test"):
        xs, ys = _series(records, "test", name, x)
        axis = ax_test if "acc" in name else ax_loss
        axis.plot(xs, ys, "o-", label=f"test {name}")
    ax_lr.plot(*_series(records, "train", "lr", x), label="lr")
    for axis, ylabel in ((ax_loss, "loss"), (ax_test, "accuracy"), (ax_lr, "learning rate")):
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(loc="best", fontsize=8)
    ax_lr.set_xlabel("iterations" if x == "iter" else "seconds")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
