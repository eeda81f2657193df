"""Flow and step configuration: known keys, defaults, and loading from YAML or TOML files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

FLOW_DEFAULTS: dict[str, Any] = {
    "max_concurrent": 1,
    "stop_on_exception": True,
    "task_construct": None,
    # Not "<temp>/sequent": a folder of the package's name beside a script in the temp folder
    # would shadow the installed package for ``import sequent``.
    "logdir": os.path.join(tempfile.gettempdir(), "sequent-logs"),
    "workdir": tempfile.gettempdir(),
    "sleep_between_loops": 1,
    "start_method": None,  # the process executor's multiprocessing start method
    # Dask: seconds a step whose hosts= match no worker waits for one to join (None: fail
    # before the run, or 60 s on an adaptive cluster).
    "hosts_wait": None,
}

#: Keys a step's own ``config`` may set (they override the flow's and enclosing containers').
STEP_KEYS = frozenset({"max_concurrent", "stop_on_exception", "dask_resources"})


def load_config(config: Any, tag: str | None = None) -> dict[str, Any]:
    """The flow configuration from a mapping or a YAML/TOML file, with defaults filled in.

    Raises ``ConfigError`` for an unreadable file, a missing ``tag``, an unknown key or a value
    of the wrong kind.
    """
    if config is None:
        config = {}
    if isinstance(config, (str, os.PathLike)):
        config = _read_file(Path(config))
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"config must be a mapping or a path to a YAML or TOML file, got {config!r}"
        )
    if tag is not None and not isinstance(tag, str):
        raise ConfigError(f"config_tag must be a dotted key such as 'prod.sequent', got {tag!r}")
    if tag:
        for part in tag.split("."):
            if not isinstance(config, Mapping) or part not in config:
                raise ConfigError(
                    f"config_tag {tag!r} not found in the configuration (no key {part!r}); "
                    f"check the tag or the file's layout"
                )
            config = config[part]
        if not isinstance(config, Mapping):
            raise ConfigError(f"config_tag {tag!r} selects {config!r}, which is not a mapping")
    unknown = sorted(set(config) - set(FLOW_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known keys are {sorted(FLOW_DEFAULTS)}")
    merged = {**FLOW_DEFAULTS, **config}
    check_values(merged, "the flow")
    return merged


def check_step_config(config: Mapping[str, Any], step: str) -> dict[str, Any]:
    """A step's ``config``, checked: only ``STEP_KEYS`` with values of the right kind."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"step {step!r}: config must be a mapping, got {config!r}")
    unknown = sorted(set(config) - STEP_KEYS)
    if unknown:
        raise ConfigError(
            f"step {step!r}: config keys {unknown} cannot be set per step; "
            f"a step may set {sorted(STEP_KEYS)} (set the others on the Sequent)"
        )
    check_values(config, f"step {step!r}")
    return dict(config)


def check_values(config: Mapping[str, Any], where: str) -> None:
    """Raise ``ConfigError`` when a known key has a value of the wrong kind."""
    if "max_concurrent" in config:
        value = config["max_concurrent"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{where}: max_concurrent must be a whole number (<1 for no limit), got {value!r}"
            )
    if "stop_on_exception" in config and not isinstance(config["stop_on_exception"], bool):
        raise ConfigError(
            f"{where}: stop_on_exception must be True or False, got {config['stop_on_exception']!r}"
        )
    for key in ("logdir", "workdir"):
        if key in config and not isinstance(config[key], (str, os.PathLike)):
            raise ConfigError(f"{where}: {key} must be a folder path, got {config[key]!r}")
    method = config.get("start_method")
    if method is not None and method not in ("fork", "spawn", "forkserver"):
        raise ConfigError(
            f"{where}: start_method must be 'fork', 'spawn' or 'forkserver' (or None for the "
            f"platform's default), got {method!r}"
        )
    wait = config.get("hosts_wait")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0
    ):
        raise ConfigError(
            f"{where}: hosts_wait must be a number of seconds >= 0 (or None), got {wait!r}"
        )
    resources = config.get("dask_resources")
    if resources is not None and not (
        isinstance(resources, Mapping)
        and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in resources.items()
        )
    ):
        raise ConfigError(
            f"{where}: dask_resources must map Dask worker resource names to amounts, "
            f"e.g. {{'GPU': 1}}, got {resources!r}"
        )
    value = config.get("sleep_between_loops", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(
            f"{where}: sleep_between_loops must be a number of seconds >= 0, got {value!r}"
        )


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
    except Exception as exc:
        raise ConfigError(
            f"config file {str(path)!r} cannot be parsed: {type(exc).__name__}: {exc}"
        ) from exc
    raise ConfigError(
        f"config file {str(path)!r} has an unknown kind; use a .yaml, .yml or .toml file"
    )
