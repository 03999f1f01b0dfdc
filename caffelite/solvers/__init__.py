"""Caffe's solvers: the loop (solver.py), one update rule per module, the lr policies."""
from .adadelta import AdaDeltaSolver
from .adagrad import AdaGradSolver
from .adam import AdamSolver
from .nesterov import NesterovSolver
from .rmsprop import RMSPropSolver
from .sgd import SGDSolver
from .solver import Solver, solver_class

__all__ = ["get_solver", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "solver_class"]


def get_solver(param, parallel=False, **kwargs):
    """The solver a config asks for (`type`), from a path or a SolverParameter (pycaffe's
    caffe.get_solver). parallel=True: data-parallel over the MPI world under mpiexec
    (caffelite/parallel; an ordinary solver in a plain process)."""
    if parallel:
        from ..parallel import parallel_solver

        return parallel_solver(param, **kwargs)
    return Solver(param, **kwargs)
