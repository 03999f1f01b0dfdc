"""The exceptions users can cause. Each message names the file/layer and what to do."""


class CaffeliteError(ValueError):
    """Base of every error a user can cause; the CLI prints it as one line, exit status 2."""


class ConfigError(CaffeliteError):
    """A config file (prototxt/YAML/JSON) that cannot be read or does not fit the schema."""


class NetError(CaffeliteError):
    """A net that cannot be built: missing bottoms, bad wiring, bad layer parameters."""


class WeightsError(CaffeliteError):
    """A .caffemodel/.solverstate/.binaryproto that cannot be read or does not fit the net."""


class SolverError(CaffeliteError):
    """A solver config or state that cannot be used."""


def layer_error(layer_param, message):
    """A NetError naming the layer: "layer 'conv1' (Convolution): <message>"."""
    return NetError(f"layer '{layer_param.name}' ({layer_param.type}): {message}")
