"""``python -m sequent``: the ``sequent`` command, as ``python -m sequent.cli`` is."""

from .cli import main

main()
