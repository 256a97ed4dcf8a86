"""Names of the files a run writes in its folder, for the commands that read them without
importing the trainer (``mtlbench plot``)."""

STATS_FILE = "gradient_stats.json"  # the gradient probe's statistics (callbacks/gradient_probe.py)
AFFINITY_FILE = "task_affinity.json"  # the inter-task affinity lookaheads (callbacks/task_affinity.py)
