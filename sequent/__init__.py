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


def __getattr__(name: str) -> object:
    # ``seq.DaskExecutor(address=...)`` without importing distributed for every user.
    if name == "DaskExecutor":
        from .executors.dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'sequent' has no attribute {name!r}")
