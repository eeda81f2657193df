"""Flow and step configuration: known keys, defaults, and loading from YAML or TOML files.

Configurations written for the original sequent 3.1.x load too: its ``LOGGING`` section is read
as ``logging_level`` and ``logdir``, and keys only the original used are set aside (the caller
warns once, naming them) instead of being refused.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError

FLOW_DEFAULTS: dict[str, Any] = {
    "max_concurrent": 1,
    "stop_on_exception": True,
    "task_construct": None,
    # None: beside the store, <store stem>.logs (a private folder in the temp folder for an
    # in-memory store); see sequent.logfolder.default_logdir.
    "logdir": None,
    # Modes of log folders and files: private (0700/0600), group (0750/0640), shared (0755/0644).
    "log_permissions": "private",
    "workdir": tempfile.gettempdir(),
    "sleep_between_loops": 1,
    "start_method": None,  # how the process executor starts workers (zygote, fork, spawn, ...)
    # Dask: seconds a step whose hosts= match no worker waits for one to join (None: fail
    # before the run, or 60 s on an adaptive cluster).
    "hosts_wait": None,
}

#: Keys a step's own ``config`` may set (they override the flow's and enclosing containers').
STEP_KEYS = frozenset({"max_concurrent", "stop_on_exception", "dask_resources"})

#: Keys only the original sequent 3.1.x / eventor used (SSH hosts, shared databases, its own
#: logging setup): accepted and ignored, with one warning naming them.
LEGACY_KEYS = frozenset(
    {
        "DATABASES",
        "HOSTS",
        "day_to_keep_db",
        "debug",
        "envvar_prefix",
        "import_file",
        "import_module",
        "pass_logger_to_task",
        "remote_method",
        "sequence_arg_name",
        "sequent_db",
        "shared_db",
        "ssh_config",
        "ssh_host",
        "ssh_port",
    }
)

#: The original's ``LOGGING`` section: the keys read here, and those ignored with the warning.
LOGGING_KEYS = frozenset({"logging_level", "logdir"})
LEGACY_LOGGING_KEYS = frozenset(
    {
        "atTime",
        "backupCount",
        "consolidate",
        "console",
        "datefmt",
        "delay",
        "encoding",
        "file_mode",
        "file_prefix",
        "file_suffix",
        "interval",
        "level_formats",
        "maxBytes",
        "utc",
        "when",
    }
)


@attrs.frozen
class Settings:
    """A flow's configuration as read: ``config`` with defaults, and what the original's keys said.

    ``logging_level`` is the ``LOGGING`` section's level (None when it gave none); ``ignored``
    names the keys only the original used, sorted; ``databases`` is its ``DATABASES`` section.
    """

    config: dict[str, Any]
    logging_level: Any = None
    ignored: tuple[str, ...] = ()
    databases: Mapping[str, Any] = attrs.field(factory=dict)


def load_config(config: Any, tag: str | None = None) -> dict[str, Any]:
    """The flow configuration from a mapping or a YAML/TOML file, with defaults filled in.

    Raises ``ConfigError`` for an unreadable file, a missing ``tag``, an unknown key or a value
    of the wrong kind.
    """
    return read_settings(config, tag).config


def read_settings(config: Any, tag: str | None = None) -> Settings:
    """``load_config``'s work, keeping what the original's ``LOGGING`` and other keys said.

    Raises ``ConfigError`` as ``load_config`` does; a key neither known here nor used by the
    original is an error with the closest known key as a hint.
    """
    if config is None:
        config = {}
    if isinstance(config, (str, os.PathLike)):
        source = f"{os.fspath(config)}" + (f" (config_tag {tag!r})" if tag else "")
        try:
            return _settings(_read_file(Path(config)), tag)
        except ConfigError as exc:
            if source in str(exc):
                raise
            raise ConfigError(f"config file {source}: {exc}") from None
    return _settings(config, tag)


def _settings(config: Any, tag: str | None) -> Settings:
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
    config = dict(config)
    ignored = sorted(key for key in config if key in LEGACY_KEYS)
    databases = config.get("DATABASES")
    level, logging_ignored = _logging_section(config.pop("LOGGING", None), config)
    _check_known(config, set(FLOW_DEFAULTS) | LEGACY_KEYS | {"LOGGING"}, "config key")
    merged = {**FLOW_DEFAULTS, **{k: v for k, v in config.items() if k not in LEGACY_KEYS}}
    for key in ("logdir", "workdir"):
        if isinstance(merged[key], str):
            merged[key] = os.path.expanduser(merged[key])
    check_values(merged, "the flow")
    return Settings(
        config=merged,
        logging_level=level,
        ignored=tuple(ignored + logging_ignored),
        databases=databases if isinstance(databases, Mapping) else {},
    )


def _logging_section(section: Any, config: dict[str, Any]) -> tuple[Any, list[str]]:
    """Read the original's ``LOGGING`` mapping: its level, its ``logdir`` (put into ``config``).

    Returns the level (None if not given) and the section's ignored keys as ``LOGGING.key``.
    """
    if section is None:
        return None, []
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"config LOGGING must be a mapping such as {{'logging_level': logging.INFO, "
            f"'logdir': '/var/log/flows'}}, got {section!r}"
        )
    _check_known(section, LOGGING_KEYS | LEGACY_LOGGING_KEYS, "config LOGGING key")
    if "logdir" in section and "logdir" not in config:
        config["logdir"] = section["logdir"]
    ignored = sorted(f"LOGGING.{key}" for key in section if key in LEGACY_LOGGING_KEYS)
    return section.get("logging_level"), ignored


def _check_known(config: Mapping[str, Any], known: set[str] | frozenset[str], what: str) -> None:
    """Raise ``ConfigError`` for the first key of ``config`` not in ``known``, with a hint."""
    unknown = sorted(str(key) for key in config if key not in known)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    listed = sorted(k for k in known if k not in LEGACY_KEYS and k not in LEGACY_LOGGING_KEYS)
    raise ConfigError(f"unknown {what} {', '.join(hints)}; known keys are {listed}")


def check_step_config(config: Mapping[str, Any], step: str) -> dict[str, Any]:
    """A step's ``config``, checked: only ``STEP_KEYS`` with values of the right kind.

    Keys only the original used (``LEGACY_KEYS``) are dropped; the caller warns about them.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"step {step!r}: config must be a mapping, got {config!r}")
    unknown = sorted(set(config) - STEP_KEYS - LEGACY_KEYS)
    if unknown:
        raise ConfigError(
            f"step {step!r}: config keys {unknown} cannot be set per step; "
            f"a step may set {sorted(STEP_KEYS)} (set the others on the Sequent)"
        )
    check_values(config, f"step {step!r}")
    return {key: value for key, value in config.items() if key not in LEGACY_KEYS}


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
        if key not in config or (key == "logdir" and config[key] is None):
            continue  # logdir None: the default folder beside the store
        if not isinstance(config[key], (str, os.PathLike)):
            raise ConfigError(f"{where}: {key} must be a folder path, got {config[key]!r}")
    permissions = config.get("log_permissions", "private")
    if permissions not in ("private", "group", "shared"):
        raise ConfigError(
            f"{where}: log_permissions must be 'private' (folders 0700, files 0600), 'group' "
            f"(0750, 0640) or 'shared' (0755, 0644), got {permissions!r}"
        )
    method = config.get("start_method")
    if method is not None and method not in ("zygote", "fork", "spawn", "forkserver"):
        raise ConfigError(
            f"{where}: start_method must be 'zygote', 'fork', 'spawn' or 'forkserver' (or None "
            f"for the platform's default), got {method!r}"
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
        import yaml  # any other suffix (.yaml, .yml, the original's runly.conf): YAML

        return yaml.safe_load(text) or {}
    except Exception as exc:
        kind = "TOML" if suffix == ".toml" else "YAML (the kind of any file not named *.toml)"
        raise ConfigError(
            f"config file {str(path)!r} cannot be parsed as {kind}: {type(exc).__name__}: "
            f"{exc}; fix the file's syntax"
        ) from exc
