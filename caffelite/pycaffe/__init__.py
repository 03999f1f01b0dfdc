"""pycaffe's Python-side modules (caffe.io, Classifier, Detector, coord_map, module state), kept
apart from the core so `caffelite.<name>` can expose them under pycaffe's names.

Also answers `from caffe.pycaffe import Net, SGDSolver` (pycaffe's own module of that name).
"""
_CORE = {"Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
         "AdaDeltaSolver", "AdamSolver"}


def __getattr__(name):
    if name in _CORE:  # lazily: net.py imports this package
        import caffelite

        return getattr(caffelite, name)
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
