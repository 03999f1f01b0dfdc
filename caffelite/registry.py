"""One small Registry class: name -> class/function, with a "did you mean" for typos."""
import difflib


class Registry:
    """A named table (layer types, solvers, fillers, lr policies)."""

    def __init__(self, kind):
        self.kind = kind
        self._table = {}

    def register(self, name):
        def decorator(obj):
            if name in self._table:
                raise KeyError(f"{self.kind} '{name}' registered twice")
            self._table[name] = obj
            return obj

        return decorator

    def __contains__(self, name):
        return name in self._table

    def get(self, name):
        """The entry for name; a KeyError whose message proposes the closest valid name."""
        try:
            return self._table[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}'{suggest(name, self._table)}") from None

    def names(self):
        return sorted(self._table)


def suggest(name, candidates):
    """"; did you mean 'x'?" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


LAYERS = Registry("layer type")
SOLVERS = Registry("solver type")
FILLERS = Registry("filler type")
LR_POLICIES = Registry("lr_policy")

register_layer = LAYERS.register
