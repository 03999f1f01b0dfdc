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


def read_bytes(path, error=CaffeliteError, kind=""):
    """The bytes of the file at path; `error` naming the path when it cannot be read.

    kind names the file in messages ("" or e.g. ".caffemodel "): "x: no such .caffemodel file".
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise error(f"{path}: no such {kind}file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {kind}file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {kind}file ({exc.strerror or exc})") from None
