"""Data-parallel training over MPI (mpi4py): `mpiexec -n N caffelite train CONFIG` trains the
model one process would train with N times each data layer's batch (docs/scaling.md).

mpi.py finds the MPI world (mpi4py is imported only under a launcher) and runs the collectives
with a deadline; data_parallel.py is the solver callback (broadcast, gradient allreduce,
agreed signals); sharded_rng.py keeps the random streams equal to one process's.

The Python API, pycaffe's multi-process pattern over MPI:

    import caffelite
    import caffelite.parallel

    with caffelite.parallel.world().fail_together():   # an error on any rank ends the job
        solver = caffelite.get_solver("solver.prototxt", parallel=True)   # under mpiexec
        solver.solve()

or by hand: `world = caffelite.parallel.init()` before building the solver, then
`caffelite.parallel.DataParallel(solver).attach()`. `caffelite.solver_count()` and
`caffelite.solver_rank()` report the MPI world (1 and 0 in a plain process).
"""
from .mpi import ParallelError, World, solver_count, solver_rank, world

__all__ = ["DataParallel", "ParallelError", "World", "init", "parallel_solver", "solver_count",
           "solver_rank", "world"]


def __getattr__(name):
    if name in ("DataParallel", "init"):
        from . import data_parallel

        return getattr(data_parallel, name)
    raise AttributeError(f"module 'caffelite.parallel' has no attribute '{name}'")


def parallel_solver(param, resume=None, **kwargs):
    """A solver (as caffelite.get_solver builds it) training data-parallel over this process's
    MPI world: the shard is set before the nets are built, rank 0's state (restored from
    `resume`, a .solverstate, when given) is broadcast, and the gradients are averaged. In a
    plain process it is an ordinary solver."""
    from ..solvers import Solver
    from .data_parallel import DataParallel, init

    current = init()
    solver = Solver(param, **kwargs)
    if current.size > 1:
        DataParallel(solver, current).attach(resume=resume)
    elif resume is not None:
        solver.restore(resume)
    return solver
