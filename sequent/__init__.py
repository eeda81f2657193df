"""sequent: program flows of batch steps that depend on each other, with recovery."""

from .context import StepContext, current
from .errors import (
    ClusterError,
    ConfigError,
    CycleError,
    DefinitionError,
    DefinitionTypeError,
    DuplicateStepError,
    ExecutorError,
    LeaseError,
    LogFolderError,
    NotSendableError,
    RecoveryError,
    ResourceError,
    SequentError,
    StoreError,
    UnknownHostError,
    UnknownStepError,
)
from .flow import Sequent
from .handles import And, Event, Or, Step, and_, or_
from .legacy import SequentWarning
from .program import Program
from .resources import Resource, ResourcePool
from .status import (
    RUN_RECOVER,
    RUN_RESTART,
    STEP_ACTIVE,
    STEP_COMPLETE,
    STEP_FAILURE,
    STEP_READY,
    STEP_RERUN,
    STEP_SKIP,
    STEP_SUCCESS,
    RunMode,
    StepReplay,
    StepStatus,
)
from .version import __version__ as __version__

__all__ = [
    "RUN_RECOVER",
    "RUN_RESTART",
    "STEP_ACTIVE",
    "STEP_COMPLETE",
    "STEP_FAILURE",
    "STEP_READY",
    "STEP_RERUN",
    "STEP_SKIP",
    "STEP_SUCCESS",
    "And",
    "ClusterError",
    "ConfigError",
    "CycleError",
    "DefinitionError",
    "DefinitionTypeError",
    "DuplicateStepError",
    "Event",
    "ExecutorError",
    "LeaseError",
    "LogFolderError",
    "NotSendableError",
    "Or",
    "Program",
    "RecoveryError",
    "ResourceError",
    "Resource",
    "ResourcePool",
    "RunMode",
    "SequentError",
    "SequentWarning",
    "Sequent",
    "Step",
    "StepContext",
    "StepReplay",
    "StepStatus",
    "StoreError",
    "UnknownHostError",
    "UnknownStepError",
    "and_",
    "current",
    "or_",
]


_EXECUTORS = {
    "SerialExecutor": "serial",
    "ThreadExecutor": "thread",
    "ProcessExecutor": "process",
    "LokyExecutor": "loky",
    "DaskExecutor": "dask",
}


def __getattr__(name: str) -> object:
    # ``seq.DaskExecutor(address=...)``, ``seq.ProcessExecutor(max_workers=4)``: imported on
    # first use, so ``import sequent`` imports neither distributed nor loky.
    if name in _EXECUTORS:
        from importlib import import_module

        return getattr(import_module(f".executors.{_EXECUTORS[name]}", __name__), name)
    raise AttributeError(f"module 'sequent' has no attribute {name!r}")
