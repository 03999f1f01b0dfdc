"""Run under mpiexec by test_api.py: the Python API's two ways to train data-parallel."""
import hashlib
import json
import sys

import numpy as np

import caffelite
from caffelite.parallel import DataParallel, init

config = sys.argv[1]
with caffelite.parallel.world().fail_together():
    built = caffelite.get_solver(config, parallel=True)
    built.step(10)
    init()
    by_hand = caffelite.SGDSolver(config)
    DataParallel(by_hand).attach()
    by_hand.step(10)
    digests = [hashlib.sha256(b"".join(np.ascontiguousarray(p.data).tobytes()
                                       for p in s.learnable_params)).hexdigest()
               for s in (built, by_hand)]
    # one file per rank: the launcher may interleave the ranks' stdout within a line
    with open(f"report{caffelite.solver_rank()}.json", "w") as f:
        json.dump({"rank": caffelite.solver_rank(), "count": caffelite.solver_count(),
                   "digests": digests, "loss": built.smoothed_loss}, f)
