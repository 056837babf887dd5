"""``python -m cascade`` is the ``cascade`` command."""

from cascade.cli.entry import main

main()
