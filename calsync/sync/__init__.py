"""The sync engine: status database, pure planning, execution, conflicts, history.

``runner.run_pair`` is the one entry point the CLI and the daemon use: it takes
the pair's lock, opens its status and the shared history, and runs ``Engine``.
"""

# The ways a pair can be synced (``calsync sync --mode``; see ``plan``).  Here,
# not in ``plan``, so that the command line can offer them without loading the
# engine before it has started listing the stores.
MODES = (
    "two-way",
    "slow",
    "one-way-a-to-b",
    "one-way-b-to-a",
    "refresh-from-a",
    "refresh-from-b",
)

# ``extra`` of the engine's log records that say what its result says too (an
# item's error, why a pair stopped): a command that prints the result itself
# drops them, so that each is said once (``calsync.cli.results_printed``);
# the daemon, which prints no result, logs them.
REPORTED_KEY = "calsync_reported"
REPORTED = {REPORTED_KEY: True}
