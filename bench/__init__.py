"""What runs, in three rooms: ``run`` (what one run is), ``sweeps`` (what runs many), ``cli``
(the ``mtlbench`` command), each importing only the rooms below it (import-linter checks it)."""

import time

IMPORTED_AT = time.perf_counter()  # the process's first import of the suite: where a run's start-up begins (run/budget.py)
