"""A pass-through Python layer for the fault tests: param_str "pid" writes rank<R>.pid (this
process's id) in the working directory at setup; "fail R K" opens a file that does not exist
on rank R at its K-th forward (a missing file seen by one rank)."""
import os

import caffelite


class RankProbe(caffelite.Layer):
    def setup(self, bottom, top):
        self.words = self.param_str.split()
        self.forwards = 0
        if self.words[:1] == ["pid"]:
            path = f"rank{caffelite.solver_rank()}.pid"
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        self.forwards += 1
        if self.words[:1] == ["fail"] and caffelite.solver_rank() == int(self.words[1]) \
                and self.forwards == int(self.words[2]):
            open(f"missing-shard-{caffelite.solver_rank()}.bin", "rb")
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff


def layer_text(param_str):
    """The YAML of a RankProbe layer on `data`, for write_config(extra_layers=...)."""
    return ("    - name: probe\n      type: Python\n      bottom: data\n      top: data\n"
            "      include: [{phase: TRAIN}]\n"
            f"      python_param: {{module: rank_probe, layer: RankProbe, "
            f"param_str: \"{param_str}\"}}\n")
