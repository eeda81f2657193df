"""The pure compiler: frozen step definitions in, a frozen DAG of step instances out.

Nothing in this package imports the executors, the store or logging, or does I/O.
"""

from .definitions import FlowDef, StepDef
from .expand import ROOT, Iteration, NodeKey, NodeSpec, StepIndex, expand_iterations, repeat_items
from .graph import Plan, build_graph, compile_flow, validate
from .requirements import (
    NOTHING,
    AllOf,
    AnyOf,
    Atom,
    Expr,
    Requirement,
    atoms,
    compile_requirement,
    path_name,
)

__all__ = [
    "NOTHING",
    "ROOT",
    "AllOf",
    "AnyOf",
    "Atom",
    "Expr",
    "FlowDef",
    "Iteration",
    "NodeKey",
    "NodeSpec",
    "Plan",
    "Requirement",
    "StepDef",
    "StepIndex",
    "atoms",
    "build_graph",
    "compile_requirement",
    "compile_flow",
    "expand_iterations",
    "path_name",
    "repeat_items",
    "validate",
]
