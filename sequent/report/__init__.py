"""One self-contained HTML page about a recorded run: what failed, its timelines, graph, history.

Built from the store alone (no flow code needed), everything inline (CSS, SVG, a little
JavaScript): the page opens from a file with no network. The modules, by job:

    marks      what an instance's status means (unhandled/handled failure, recovered, ...);
               ``sequent show`` marks instances with it too
    model      the run read once from the store: history by attempt, every try's times
    timeline   one attempt's lines, grouped by container, as SVG
    graph      one Graphviz drawing per container level, with counts by mark
    page       the header, the grid (step instances x attempts) and the page itself
    assets     the inline style sheet and script
"""

from ..compiler.structure import plan_from_structure
from .graph import EXPANDED_LIMIT, graph_section, graphviz_svg
from .marks import Mark, read_marks
from .page import build_report, write_report
from .timeline import Row, timeline_rows, timeline_svg

__all__ = [
    "EXPANDED_LIMIT",
    "Mark",
    "Row",
    "build_report",
    "graph_section",
    "graphviz_svg",
    "plan_from_structure",
    "read_marks",
    "timeline_rows",
    "timeline_svg",
    "write_report",
]
