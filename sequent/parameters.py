"""Parameters from the command line: ``-p KEY=VALUE``, ``--params-file``, ``--config KEY=VALUE``.

Values are read as JSON where they parse (``true``, ``3``, ``[1, 2]``, ``{"a": 1}``) and kept
as strings otherwise (``-p day=2024-01-31`` is the string ``'2024-01-31'``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import FLOW_DEFAULTS, check_values
from .errors import ConfigError, ParameterError


def parse_value(text: str) -> Any:
    """``text`` as JSON where it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` texts as a dict, later keys winning; ``ParameterError`` names ``option``."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sign, value = pair.partition("=")
        key = key.strip()
        if not sign or not key.isidentifier():
            raise ParameterError(
                f"{option} {pair!r} is not KEY=VALUE with KEY a Python name; write it as "
                f"{option} name=value (for example {option} fail_c2=true)"
            )
        result[key] = parse_value(value)
    return result


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The parameters in a ``.toml``, ``.yaml`` or ``.yml`` file (a table of names to values).

    Raises ``ParameterError`` for a missing, unreadable or non-table file.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ParameterError(
            f"--params-file {str(file)!r} is neither TOML nor YAML; give a .toml, .yaml or "
            f".yml file"
        )
    try:
        text = file.read_text(encoding="utf-8")
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ParameterError(
            f"--params-file {str(file)!r} cannot be read ({type(exc).__name__}: {exc}); fix the "
            f"file or its path"
        ) from exc
    data = {} if data is None else data
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise ParameterError(
            f"--params-file {str(file)!r} holds {type(data).__name__}, not a table of names to "
            f"values; write name = value lines (TOML) or name: value lines (YAML)"
        )
    return dict(data)


def check_parameters(builder: Callable[..., Any], params: Mapping[str, Any], shown: str) -> None:
    """Raise ``ParameterError`` unless ``builder(**params)`` binds, listing what it takes."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return  # no signature to check (a builtin): the call itself will tell
    accepted = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [name for name in params if name not in accepted and not open_ended]
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ParameterError(
            f"{shown} takes no parameter {', '.join(map(repr, unknown))}; it takes: {takes}. "
            f"Fix the -p name (or --params-file key)"
        )
    try:
        signature.bind(**params)
    except TypeError as exc:
        given = f"with {', '.join(sorted(params))}" if params else "without arguments"
        raise ParameterError(
            f"{shown} cannot be called {given} ({exc}); pass what it needs with -p NAME=VALUE, "
            f"or give its parameters defaults"
        ) from exc


def config_overrides(pairs: Iterable[str], max_concurrent: int | None) -> dict[str, Any]:
    """``--config KEY=VALUE`` and ``-j N`` as flow config keys, checked.

    Raises ``ConfigError`` for an unknown key or a value of the wrong kind.
    """
    try:
        overrides = parse_assignments(pairs, "--config")
    except ParameterError as exc:
        raise ConfigError(str(exc)) from exc
    unknown = sorted(set(overrides) - set(FLOW_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"--config {unknown[0]}=...: {unknown[0]!r} is not a flow config key; the keys are "
            f"{', '.join(sorted(FLOW_DEFAULTS))}"
        )
    if max_concurrent is not None:
        overrides["max_concurrent"] = max_concurrent
    check_values(overrides, "--config")
    return overrides


__all__ = [
    "check_parameters",
    "config_overrides",
    "parse_assignments",
    "parse_value",
    "read_params_file",
]
