"""What runs, in three rooms: ``run`` (what one run is), ``sweeps`` (what runs many), ``cli``
(the ``mtlbench`` command), each importing only the rooms below it (import-linter checks it)."""
