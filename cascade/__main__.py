"""``python -m cascade`` is the ``cascade`` command."""

from cascade.cli.main import main

main()
