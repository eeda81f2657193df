"""Run the test suite on every supported Python: ``nox`` (or ``nox -s tests-3.12``)."""

import nox


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("ruff", "check", "sequent", "tests")
    session.run("mypy", "sequent")
