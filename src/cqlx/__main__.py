"""``python -m cqlx`` is the ``cqlx`` command."""

from cqlx.cli import main

main()
