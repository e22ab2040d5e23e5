"""``python -m calsync``: the same as the ``calsync`` command."""

from calsync.cli import main

main()
