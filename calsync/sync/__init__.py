"""The sync engine: status database, pure planning, execution, conflicts, history.

``runner.run_pair`` is the one entry point the CLI and the daemon use: it takes
the pair's lock, opens its status and the shared history, and runs ``Engine``.
"""
