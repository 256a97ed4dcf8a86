"""What runs many: sweeps, study axes and studies, figures, and the perf benchmarks. They
launch runs through :mod:`mtlbench.bench.run.launch`, never through the command line."""
