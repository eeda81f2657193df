"""Laying DOT text out with Graphviz's ``dot`` program, for ``sequent graph`` and the report.

Runs ``dot`` as a subprocess (the only place that does); raises ``GraphvizError`` saying why
when it is missing, too slow or fails, so each caller decides what to do instead.
"""

from __future__ import annotations

import shutil
import subprocess

from .errors import SequentError

INSTALL_HINT = "install Graphviz (apt-get install graphviz, brew install graphviz)"


class GraphvizError(SequentError, RuntimeError):
    """Graphviz's ``dot`` is not installed (``missing``), or could not lay a graph out."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def render(dot_texts: list[str], fmt: str, timeout: float) -> bytes:
    """The graphs ``dot_texts`` laid out in one ``dot -T<fmt>`` call, as its output bytes.

    Raises ``GraphvizError`` when ``dot`` is not on PATH, takes longer than ``timeout`` seconds
    or exits with an error.
    """
    program = shutil.which("dot")
    if program is None:
        raise GraphvizError(
            f"Graphviz's dot program is not installed (or not on PATH); {INSTALL_HINT}",
            missing=True,
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input="".join(dot_texts).encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GraphvizError(f"Graphviz took longer than {timeout} s to lay out the graph") from exc
    except OSError as exc:
        raise GraphvizError(f"Graphviz could not be started ({exc}); {INSTALL_HINT}") from exc
    if done.returncode != 0:
        raise GraphvizError(
            f"Graphviz's dot failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    return done.stdout
