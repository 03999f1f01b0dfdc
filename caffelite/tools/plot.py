"""Training curves of one or more runs on the same axes: train (and test) loss, each test
metric, and the learning rate, against iterations or seconds. One colour per run, the legend
by run name; the loss on a log scale unless asked otherwise; an optional exponential moving
average drawn over the raw curve, which stays faint behind it."""
from pathlib import Path

from ..errors import CaffeliteError
from .metrics import METRICS_SUFFIX

FORMATS = ("png", "svg", "pdf")
NOT_OUTPUTS = {"phase", "iter", "seconds", "lr", "net", "smoothed_loss"}
LINESTYLES = ("-", "--", ":", "-.")


def output_names(records, phase):
    """The outputs recorded for phase, in the order they first appear."""
    names = []
    for r in records:
        if r.get("phase") == phase:
            names += [k for k in r if k not in NOT_OUTPUTS and k not in names]
    return names


def run_name(path):
    """A short name for a run: the metrics file's prefix, a log's stem, a directory's name."""
    path = Path(path)
    name = path.name
    if name.endswith(METRICS_SUFFIX):
        return name[:-len(METRICS_SUFFIX)]
    return path.stem if path.suffix else name


def unique_names(paths):
    """Run names for paths, with the parent folder added where two would be the same."""
    names = [run_name(p) for p in paths]
    return [f"{Path(path).resolve().parent.name}/{name}" if names.count(name) > 1 else name
            for path, name in zip(paths, names)]


def ema(values, k):
    """Exponential moving average over a span of k points (alpha = 2 / (k + 1)), starting at
    the first value; k <= 1 leaves the values as they are."""
    if k <= 1 or not values:
        return list(values)
    alpha, out = 2.0 / (k + 1), [values[0]]
    for v in values[1:]:
        out.append(out[-1] + alpha * (v - out[-1]))
    return out


def series(records, phase, name, x, start=None, stop=None, net=None):
    """(xs, ys) of output `name` in phase's records, iterations within [start, stop]."""
    points = [(r[x], r[name]) for r in records
              if r.get("phase") == phase and name in r and x in r
              and (start is None or r["iter"] >= start) and (stop is None or r["iter"] <= stop)
              and (net is None or r.get("net", 0) == net)]
    return [p[0] for p in points], [p[1] for p in points]


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CaffeliteError('plotting needs matplotlib: pip install "caffelite[plot]"') from None
    return plt


def check_format(path):
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise CaffeliteError(f"{path}: unknown image format '.{ext}'; use .png, .svg or .pdf")


def default_metrics(runs):
    """Test outputs that are not losses, over all runs (the default --metric)."""
    names = []
    for _, records in runs:
        names += [n for n in output_names(records, "test") if "loss" not in n and n not in names]
    return names


def figure(runs, x="iter", log_loss=True, smooth=0, start=None, stop=None, metrics=None,
           title=None):
    """A matplotlib Figure of runs [(name, records)]: loss, one panel per test metric, lr."""
    plt = _matplotlib()
    if x not in ("iter", "seconds"):
        raise CaffeliteError(f"--x must be 'iter' or 'seconds', not '{x}'")
    metrics = list(metrics) if metrics else default_metrics(runs)
    known = {n for _, records in runs for n in output_names(records, "test")}
    missing = [m for m in metrics if m not in known]
    if missing:
        raise CaffeliteError(f"no test output named {', '.join(map(repr, missing))} in "
                             f"{', '.join(n for n, _ in runs)}; the test outputs are: "
                             f"{', '.join(sorted(known)) or 'none'}")
    ratios = [2.2] + [1.3] * len(metrics) + [0.9]  # the loss is what one looks at first
    fig, axes = plt.subplots(len(ratios), 1, figsize=(8, 1.9 * sum(ratios) + 0.6), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": ratios})
    axes = axes[:, 0]
    ax_loss, ax_lr = axes[0], axes[-1]
    for k, (name, records) in enumerate(runs):
        colour = f"C{k % 10}"
        _loss_panel(ax_loss, name, records, colour, x, smooth, start, stop)
        for axis, metric in zip(axes[1:-1], metrics):
            _test_lines(axis, name, records, metric, colour, x, start, stop)
        xs, ys = series(records, "train", "lr", x, start, stop)
        if xs:
            ax_lr.plot(xs, ys, color=colour, label=name)
    if log_loss and all(v > 0 for line in ax_loss.lines for v in line.get_ydata()):
        ax_loss.set_yscale("log")
    ylabels = ["loss" + (" (log scale)" if ax_loss.get_yscale() == "log" else "")]
    for axis, ylabel in zip(axes, ylabels + [f"test {m}" for m in metrics] + ["learning rate"]):
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3, which="both" if axis.get_yscale() == "log" else "major")
        handles, labels = axis.get_legend_handles_labels()
        if handles:
            axis.legend(handles, labels, loc="best", fontsize=8)
    ax_lr.set_xlabel("iterations" if x == "iter" else "seconds")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _loss_panel(axis, name, records, colour, x, smooth, start, stop):
    losses = [n for n in output_names(records, "train") if "loss" in n] or \
        output_names(records, "train")
    for j, output in enumerate(losses):
        xs, ys = series(records, "train", output, x, start, stop)
        if not xs:
            continue
        label = name if len(losses) == 1 else f"{name}: {output}"
        style = LINESTYLES[j % len(LINESTYLES)]
        if smooth > 1:
            axis.plot(xs, ys, style, color=colour, alpha=0.25, linewidth=0.8)
            axis.plot(xs, ema(ys, smooth), style, color=colour, label=label)
        else:
            axis.plot(xs, ys, style, color=colour, label=label)
    for output in (n for n in output_names(records, "test") if "loss" in n):
        xs, ys = series(records, "test", output, x, start, stop, net=0)
        if xs:
            axis.plot(xs, ys, "o--", color=colour, markersize=3, linewidth=0.8,
                      label=f"{name}: test {output}")


def _test_lines(axis, name, records, metric, colour, x, start, stop):
    nets = sorted({r.get("net", 0) for r in records if r.get("phase") == "test" and metric in r})
    for j, net in enumerate(nets):
        xs, ys = series(records, "test", metric, x, start, stop, net=net)
        if xs:
            label = name if len(nets) == 1 else f"{name} (test net #{net})"
            axis.plot(xs, ys, "o" + LINESTYLES[j % len(LINESTYLES)], color=colour,
                      markersize=3, label=label)


def plot_runs(runs, path, **options):
    """Write the figure of runs [(name, records)] to path (.png, .svg or .pdf)."""
    check_format(path)
    plt = _matplotlib()
    fig = figure(runs, **options)
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def plot_curves(records, path, x="iter", title=None):
    """One run's curves (the single-run form of plot_runs)."""
    plot_runs([(title or "run", records)], path, x=x, title=title)
