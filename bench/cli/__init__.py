"""The command line: the ``mtlbench`` subcommands, on top of the run and sweep rooms."""
