"""Every exception sequent raises; each also subclasses the builtin a caller would catch."""

from __future__ import annotations


class SequentError(Exception):
    """Base of every error sequent raises."""


class DefinitionError(SequentError, ValueError):
    """A step, event or flow was defined with a value that cannot work."""


class DefinitionTypeError(SequentError, TypeError):
    """A step, event or flow was given a value of the wrong type."""


class DuplicateStepError(DefinitionError):
    """Two steps share a name among siblings, or share a path."""


class UnknownStepError(SequentError, LookupError):
    """A requirement names a step that is not a sibling of the step requiring it."""


class CycleError(DefinitionError):
    """Requirements among sibling steps form a cycle; `.cycle` lists the step paths."""

    def __init__(self, message: str, cycle: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.cycle = cycle


class ConfigError(DefinitionError):
    """A configuration key, value or file is not usable."""


class ResourceError(DefinitionError):
    """A resource pool or a request for its resources is not usable."""


class NotSendableError(SequentError, TypeError):
    """A step's func or argument cannot be sent to the chosen executor's workers."""


class RecoveryError(SequentError, LookupError):
    """A recover run was asked for, but the store holds no run to recover."""


class StoreError(SequentError, ValueError):
    """The store file is not a sequent store, is damaged, or cannot be written."""


class LogFolderError(SequentError, PermissionError):
    """A log folder is a symbolic link, belongs to another user, or cannot be made or written."""


class LeaseError(SequentError, RuntimeError):
    """Another orchestrator holds the run (it is running or recovering it now)."""


class ExecutorError(SequentError, ValueError):
    """An executor name or object is not usable."""


class FlowFileError(SequentError, ValueError):
    """A flow file cannot be loaded, or defines no flow (or several) to choose."""


class ClusterError(SequentError, ConnectionError):
    """A Dask cluster that cannot be reached, or that lost the connection."""


class UnknownHostError(SequentError, LookupError):
    """A step's ``hosts=`` names no worker of the connected cluster."""


class RunReferenceError(SequentError, LookupError):
    """A run reference (an id, a prefix of one, ``latest``) matches no run, or several."""


class StoreNotFoundError(SequentError, FileNotFoundError):
    """No store was given and none could be found (flow file, SEQUENT_STORE, this folder)."""


class ParameterError(SequentError, TypeError):
    """A parameter for the function that builds a flow is not one it takes, or is unreadable."""


class SelectionError(SequentError, LookupError):
    """A step chosen for --only, --rerun or mark is not in the flow, or cannot be chosen so."""
