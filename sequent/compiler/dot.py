"""Render a compiled plan as Graphviz DOT text: pure, no Graphviz needed to produce it.

Two views (SPEC 5.1):

* the definition graph (``expanded=False``): one node per step, containers drawn as clusters,
  requirement edges labelled with the status they wait for;
* the expanded graph (``expanded=True``): one node per step instance ``(path, sequence)``, each
  container instance a cluster holding one sub-cluster per iteration.

Given ``statuses`` (the latest status of each instance in a run), nodes are filled with the
status colour; in the definition graph a step takes the colour of its most telling instance
and lists its instances' counts. A container is anchored by a small point node named like the
container, and edges to or from it are clipped at the cluster's border (``lhead``/``ltail``).

Requirements that are not a plain conjunction (``or_`` somewhere) draw their edges dashed and
labelled ``status (or)``, and the requiring step shows the whole expression as a note line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..status import StepStatus
from . import requirements
from .definitions import Atom, Expr, StepDef, path_name
from .expand import ROOT, NodeKey
from .graph import Plan

#: Fill colour of a node by the latest status of its instance(s).
STATUS_COLORS: Mapping[StepStatus, str] = {
    StepStatus.ready: "#cfe3ff",
    StepStatus.active: "#ffe08a",
    StepStatus.success: "#a8e6a1",
    StepStatus.failure: "#f4a3a3",
    StepStatus.skipped: "#d9d9d9",
    StepStatus.interrupted: "#ffc078",
}

#: Fill colour of a node with no recorded status (not reached, or no run given).
NOT_RUN_COLOR = "#ffffff"

# Which instance status colours a whole step in the definition graph: the first one present.
_TELLING = (
    StepStatus.failure,
    StepStatus.interrupted,
    StepStatus.active,
    StepStatus.ready,
    StepStatus.success,
    StepStatus.skipped,
)


def to_dot(
    plan: Plan,
    expanded: bool = False,
    statuses: Mapping[NodeKey, StepStatus] | None = None,
    title: str | None = None,
) -> str:
    """Return DOT text for ``plan``; ``statuses`` colours nodes by a run's latest statuses.

    In the expanded view, instances found only in ``statuses`` (containers whose ``repeats``
    was a callable, expanded when the run reached them) are drawn as well, when their step
    exists in the plan. Raises nothing for a valid plan.
    """
    statuses = statuses or {}
    lines = [
        f"digraph {_quote(title if title is not None else plan.flow.name or 'flow')} {{",
        "  graph [compound=true, rankdir=LR, fontname=Helvetica, fontsize=11, nodesep=0.25];",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname=Helvetica, '
        "fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    if expanded:
        lines += _Expanded(plan, statuses).render()
    else:
        lines += _Definition(plan, statuses).render()
    lines.append("}")
    return "\n".join(lines) + "\n"


def expression_text(expr: Expr) -> str:
    """A requirement as people read it: ``s1:success or (s2:failure and s3:complete)``."""
    return requirements.text(expr)


def _note(step: StepDef) -> str:
    """The whole requirement, shown on the step when it is more than a plain conjunction."""
    if requirements.is_conjunction(step.requires):
        return ""
    return f"requires {expression_text(step.requires)}"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _settings(indent: str, **values: Any) -> str:
    """Attribute statements of a (sub)graph, one line: ``label="..."; style="...";``."""
    return indent + " ".join(
        f"{name}={_quote(str(value))};" for name, value in values.items() if value is not None
    )


def _attrs(**values: Any) -> str:
    parts = [f"{name}={_quote(str(value))}" for name, value in values.items() if value is not None]
    return f" [{', '.join(parts)}]" if parts else ""


def _repeats_text(step: StepDef) -> str:
    at_once = _parallel_text(step)
    if step.repeats is None:
        return at_once.lstrip(", ")
    if callable(step.repeats):
        return f"repeats: expanded at run time{at_once}"
    items = tuple(step.repeats)
    shown = ", ".join(repr(item) for item in items[:5])
    more = ", ..." if len(items) > 5 else ""
    return f"repeats \u00d7{len(items)}{at_once}: [{shown}{more}]"


def _instance_repeats_text(step: StepDef, members: list[NodeKey]) -> str:
    """A container instance's repeats note: a callable's count once it was expanded."""
    if callable(step.repeats) and members:
        count = len({member.sequence for member in members})
        return f"repeats \u00d7{count}{_parallel_text(step)}, expanded at run time"
    return _repeats_text(step)


def _parallel_text(step: StepDef) -> str:
    """``, up to 4 at once`` (``parallel=4``), ``, all at once`` (0), or nothing (1)."""
    if step.parallel == 1:
        return ""
    return ", all at once" if step.parallel == 0 else f", up to {step.parallel} at once"


class _View:
    """What both views share: the plan, the statuses, and how edges and clusters are drawn."""

    def __init__(self, plan: Plan, statuses: Mapping[NodeKey, StepStatus]) -> None:
        self.plan = plan
        self.statuses = statuses
        self.steps = plan.index.steps
        self.colored = bool(statuses)

    def edge(
        self,
        source: str,
        target: str,
        atom: Atom,
        under_or: bool,
        source_container: bool,
        target_container: bool,
        source_cluster: str,
        target_cluster: str,
    ) -> str:
        label = f"{atom.status.value} (or)" if under_or else atom.status.value
        return (
            f"  {_quote(source)} -> {_quote(target)}"
            + _attrs(
                label=label,
                style="dashed" if under_or else None,
                ltail=source_cluster if source_container else None,
                lhead=target_cluster if target_container else None,
            )
            + ";"
        )

    def fill(self, status: StepStatus | None) -> str:
        return STATUS_COLORS.get(status, NOT_RUN_COLOR) if status else NOT_RUN_COLOR


class _Definition(_View):
    """One node per step; containers are clusters."""

    def render(self) -> list[str]:
        self.by_path: dict[str, list[StepStatus]] = {}
        for key, status in self.statuses.items():
            self.by_path.setdefault(key.path, []).append(status)
        lines: list[str] = []
        for step in self.plan.flow.steps:
            lines += self.step(step, "  ")
        for step in self.steps.values():
            lines += self.requirements(step)
        return lines

    def cluster_id(self, step: StepDef) -> str:
        return f"cluster_{step.path_name}"

    def aggregate(self, step: StepDef) -> tuple[StepStatus | None, str]:
        found = self.by_path.get(step.path_name, [])
        if not found:
            return None, "not run" if self.colored else ""
        counts = {status: found.count(status) for status in set(found)}
        telling = next(status for status in _TELLING if status in counts)
        shown = ", ".join(f"{counts[s]} {s.value}" for s in _TELLING if s in counts)
        return telling, shown

    def step(self, step: StepDef, indent: str) -> list[str]:
        status, counts = self.aggregate(step)
        note = _note(step)
        if not step.is_container:
            label = "\n".join(part for part in (step.name, note, counts) if part)
            return [
                f"{indent}{_quote(step.path_name)}"
                + _attrs(
                    label=label,
                    fillcolor=self.fill(status),
                    tooltip=f"{step.path_name}: {counts}" if counts else step.path_name,
                )
                + ";"
            ]
        label = "\n".join(part for part in (step.name, _repeats_text(step), note, counts) if part)
        lines = [
            f"{indent}subgraph {_quote(self.cluster_id(step))} {{",
            _settings(
                indent + "  ",
                label=label,
                style="rounded,filled" if status else "rounded",
                fillcolor=_pale(self.fill(status)) if status else None,
                color="#555555",
            ),
            f"{indent}  {_quote(step.path_name)}"
            + _attrs(
                shape="point",
                width="0.08",
                label="",
                fillcolor=self.fill(status),
                tooltip=f"{step.path_name}: {counts}" if counts else step.path_name,
            )
            + ";",
        ]
        for child in step.children:
            lines += self.step(child, indent + "  ")
        lines.append(f"{indent}}}")
        return lines

    def requirements(self, step: StepDef) -> list[str]:
        lines = []
        for atom, under_or in requirements.edges(step.requires):
            source = self.steps[path_name(atom.path)]
            lines.append(
                self.edge(
                    source.path_name,
                    step.path_name,
                    atom,
                    under_or,
                    source.is_container,
                    step.is_container,
                    self.cluster_id(source),
                    self.cluster_id(step),
                )
            )
        return lines


class _Expanded(_View):
    """One node per step instance; container instances and their iterations are clusters."""

    def render(self) -> list[str]:
        keys = set(self.plan.nodes)
        keys.update(key for key in self.statuses if key.path in self.steps)
        self.keys = keys
        children: dict[NodeKey, list[NodeKey]] = {}
        for key in keys:
            children.setdefault(self.parent(key), []).append(key)
        for members in children.values():
            members.sort(key=self.rank)
        self.children = children
        lines: list[str] = []
        for key in children.get(ROOT, []):
            lines += self.node(key, "  ")
        for key in sorted(keys, key=self.rank):
            lines += self.requirements(key)
        return lines

    def parent(self, key: NodeKey) -> NodeKey:
        spec = self.plan.nodes.get(key)
        if spec is not None:
            return spec.parent
        container = self.plan.index.parents[key.path]
        if not container:
            return ROOT
        return NodeKey(container, key.sequence.rsplit(".", 1)[0])

    def rank(self, key: NodeKey) -> tuple[int, tuple[int, ...]]:
        return (self.steps[key.path].order, tuple(int(p) for p in key.sequence.split(".")))

    def node_id(self, key: NodeKey) -> str:
        return f"{key.path}/{key.sequence}"

    def cluster_id(self, key: NodeKey) -> str:
        return f"cluster_{key.path}/{key.sequence}"

    def step(self, key: NodeKey) -> StepDef:
        return self.steps[key.path]

    def node(self, key: NodeKey, indent: str) -> list[str]:
        step = self.step(key)
        status = self.statuses.get(key)
        note = _note(step)
        tooltip = f"{key.path}/{key.sequence}: {status.value if status else 'not run'}"
        if not step.is_container:
            label = "\n".join(part for part in (step.name, key.sequence, note) if part)
            return [
                f"{indent}{_quote(self.node_id(key))}"
                + _attrs(label=label, fillcolor=self.fill(status), tooltip=tooltip)
                + ";"
            ]
        members = self.children.get(key, [])
        header = f"{step.name} {key.sequence}"
        extra = _instance_repeats_text(step, members)
        label = "\n".join(part for part in (header, extra, note) if part)
        lines = [
            f"{indent}subgraph {_quote(self.cluster_id(key))} {{",
            _settings(
                indent + "  ",
                label=label,
                style="rounded,filled" if status else "rounded",
                fillcolor=_pale(self.fill(status)) if status else None,
                color="#555555",
            ),
            f"{indent}  {_quote(self.node_id(key))}"
            + _attrs(
                shape="point", width="0.08", label="", fillcolor=self.fill(status), tooltip=tooltip
            )
            + ";",
        ]
        iterations: dict[str, list[NodeKey]] = {}
        for member in members:
            iterations.setdefault(member.sequence, []).append(member)
        items = {it.sequence: it.item for it in self.plan.iterations.get(key, ())}
        several = len(iterations) > 1 or (step.repeats is not None and bool(iterations))
        for sequence, group in iterations.items():
            inner = indent + "  "
            if several:
                ordinal = sequence.rsplit(".", 1)[-1]
                item = f" (item {items[sequence]!r})" if sequence in items else ""
                lines.append(f"{inner}subgraph {_quote(f'cluster_{key.path}/{sequence}#')} {{")
                lines.append(
                    _settings(
                        inner + "  ",
                        label=f"iteration {ordinal}{item}",
                        style="dashed",
                        color="#999999",
                    )
                )
                inner += "  "
            for member in group:
                lines += self.node(member, inner)
            if several:
                lines.append(f"{indent}  }}")
        lines.append(f"{indent}}}")
        return lines

    def requirements(self, key: NodeKey) -> list[str]:
        step = self.step(key)
        lines = []
        for atom, under_or in requirements.edges(step.requires):
            source = NodeKey(path_name(atom.path), key.sequence)
            if source not in self.keys:
                continue
            source_step = self.step(source)
            lines.append(
                self.edge(
                    self.node_id(source),
                    self.node_id(key),
                    atom,
                    under_or,
                    source_step.is_container,
                    step.is_container,
                    self.cluster_id(source),
                    self.cluster_id(key),
                )
            )
        return lines


def _pale(color: str) -> str:
    """A lighter tint of ``#rrggbb`` for a cluster's background."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#{:02x}{:02x}{:02x}".format(*((255 + 2 * c) // 3 for c in (red, green, blue)))
