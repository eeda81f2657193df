"""``python -m sequent.cli``: the ``sequent`` command."""

from . import main

main()
