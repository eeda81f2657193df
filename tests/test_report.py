"""The HTML run report: built from the store alone, self-contained; checked in headless Chromium
after its scripts ran (the header, the timelines, the filter, the grid) on real runs."""

from __future__ import annotations

import json
import logging
import re
import struct
import time
import zlib

import pytest
import report_runs as runs
from seedflow import seed_flow

import sequent as seq
from sequent.cli import cli
from sequent.compiler import NodeKey
from sequent.compiler.dot import to_dot
from sequent.plan import read_store
from sequent.report import (
    build_report,
    graph_section,
    plan_from_structure,
    read_marks,
    timeline_rows,
)
from sequent.report.marks import Mark

S = seq.StepStatus


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory):
    return runs.seed_recovery(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="module")
def retry_store(tmp_path_factory):
    return runs.with_retries(tmp_path_factory.mktemp("retries"))


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory):
    return runs.interrupted(tmp_path_factory.mktemp("stopped"))


@pytest.fixture(scope="module")
def browser():
    program, why = runs.find_chromium()
    if program is None:
        pytest.skip(why)
    return program


def executed_rows(store, run_id):
    """(attempt, path/sequence) of every step instance whose code ran, per the store."""
    found = []
    for attempt in store.attempts(run_id):
        for node in store.nodes(run_id, attempt=attempt["attempt"]):
            if (
                node["kind"] == "step"
                and not node["replayed"]
                and node["started"] is not None
                and node["status"] not in ("skipped", "ready")
            ):
                found.append((attempt["attempt"], f"{node['path']}/{node['sequence']}"))
    return found


def report(store_path, run_id, folder, name="report.html"):
    with read_store(store_path) as store:
        page = folder / name
        page.write_text(build_report(store, run_id), encoding="utf-8")
    return page


def assert_self_contained(html):
    assert "<link" not in html
    assert not re.search(r"\bsrc\s*=", html)
    for url in re.findall(r"https?://[^\s\"'<>)\\]+", html):
        assert url.startswith(("http://www.w3.org/", "https://www.w3.org/")), url
    assert "@import" not in html and "url(" not in html


def timelines(dom):
    """Per attempt: (svg attributes, [(node, status, mark, y)] of the lines drawn)."""
    found = []
    for chunk in dom.split('<svg class="timeline"')[1:]:
        chunk = chunk[: chunk.index("</svg>")]
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', chunk[: chunk.index(">")]))
        lines = re.findall(
            r'<g class="row[^"]*" id="[^"]*" data-line="\d+" data-node="([^"]*)" '
            r'data-status="(\w*)" data-mark="(\w*)" data-kind="\w+" '
            r'transform="translate\(0,(\d+)\)"',
            chunk,
        )
        found.append((attributes, lines))
    return found


def header_problems(dom):
    return re.findall(r'<li class="problem" data-mark="(\w+)" data-node="([^"]+)"', dom)


def grid_columns(dom):
    head = re.search(r'<table class="grid".*?</thead>', dom, re.S).group(0)
    return re.findall(r'<th class="att">attempt (\d+)</th>', head)


def assert_drawn_height(attributes, shown):
    """The SVG is exactly as tall as the lines it shows, and its viewBox says the same."""
    top, row = int(attributes["data-top"]), int(attributes["data-row-height"])
    height = top + shown * row + 10
    assert int(attributes["height"]) == height
    assert attributes["viewBox"] == f"0 0 {attributes['width']} {height}"


def assert_filtered(browser, profile, page, word, expected):
    """After ``#filter=word`` each timeline shows exactly ``expected`` (its instances), stacked."""
    dom = runs.dump_dom(browser, profile, page, f"#filter={word}")
    drawn = timelines(dom)
    for (attributes, lines), names in zip(drawn, expected, strict=True):
        assert [name for name, *_ in lines] == names
        top, row = int(attributes["data-top"]), int(attributes["data-row-height"])
        assert [int(y) for *_, y in lines] == [top + i * row for i in range(len(names))]
        assert_drawn_height(attributes, len(names))
    return dom


# -- built from the store ----------------------------------------------------------------------


def test_seed_recovery_report_holds_both_attempts(seed_store, tmp_path):
    store_path, run_id = seed_store
    with read_store(store_path) as store:
        executed = executed_rows(store, run_id)
    assert len(executed) == 8 + 4  # up to the failure at 1.2.2, then the recover's four
    page = tmp_path / "report.html"
    result = _invoke("report", run_id, "--store", store_path, "-o", page)
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert_self_contained(html)
    data = [json.loads(text) for text in re.findall(r'class="lines">(.*?)</script>', html)]
    assert len(data) == 3  # two timelines and the grid
    for number, lines in enumerate(data[:2]):
        ran = sorted(line[7] for line in lines if line[6] == "step")
        assert ran == sorted(name for attempt, name in executed if attempt == number)
    recovered = [line[7] for line in data[1] if line[9] == "recovered"]
    assert len(recovered) == 7  # skipped as recovered in attempt 1
    notes = [line[14] for line in data[1] if line[9] == "recovered" and line[6] == "mark"]
    assert notes and all(note.startswith("ran in attempt 0: started ") for note in notes)
    grid = {line[7]: line for line in data[2] if line[7]}
    assert [cell[0] for cell in grid["s1_s11_s111/1.2.2"][10]] == ["unhandled", "rerun"]
    assert grid["s2/1"][10][0][0] == "skipped" and grid["s2/1"][10][1][0] == "success"


def test_every_try_has_the_times_its_events_recorded(retry_store):
    store_path, run_id = retry_store
    with read_store(store_path) as opened:
        events = opened.events(run_id)
        rows = timeline_rows(opened.nodes(run_id, attempt=0), events)
    row = next(row for row in rows if row.key.path == "flaky")
    tries = [e for e in events if e["path"] == "flaky" and e["started"] is not None]
    assert [(a, b) for a, b, _ in row.retries] == [(e["started"], e["ended"]) for e in tries[:2]]
    assert (row.start, row.end) == (tries[2]["started"], tries[2]["ended"])
    assert [error for *_, error in row.retries] == [
        "RuntimeError: try 1 failed",
        "RuntimeError: try 2 failed",
    ]
    assert row.retries[0][1] <= row.retries[1][0] <= row.retries[1][1] <= row.start


def test_graph_falls_back_to_a_list_without_graphviz(seed_store, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))  # no dot on PATH
    store_path, run_id = seed_store
    with read_store(store_path) as store:
        html = build_report(store, run_id)
    assert "Graphviz&#x27;s dot program is not installed" in html
    assert 'class="graph-list"' in html
    assert "<b>s111</b>" in html and "requires s1_s11_s111:success" in html


def test_graph_draws_one_level_per_container_without_stray_marks(seed_store, graphviz):
    store_path, run_id = seed_store
    with read_store(store_path) as store:
        html = build_report(store, run_id)
    panels = re.findall(r'<details class="level[^"]*" id="g-([^"]*)"', html)
    assert panels == ["", "s1", "s1_s11"]
    assert "<ellipse" not in html and 'shape="point"' not in html  # no anchor dots
    assert html.count("<svg") == 3 + 2  # three graph levels, two (empty) timelines


def test_recorded_structure_draws_the_same_graph_as_the_flow(seed_store):
    store_path, run_id = seed_store
    with read_store(store_path) as store:
        structure = store.structure(run_id)
        statuses = {
            NodeKey(node["path"], node["sequence"]): S(node["status"])
            for node in store.nodes(run_id)
        }
    rebuilt = plan_from_structure(structure)
    original = seed_flow(name="runly04").compile()
    for expanded in (False, True):
        assert to_dot(rebuilt, expanded, statuses) == to_dot(original, expanded, statuses)


def test_show_marks_handled_and_unhandled_failures_as_the_report_does(tmp_path):
    store = tmp_path / "marks.run.db"
    flow = seq.Sequent(
        name="marks",
        store=str(store),
        executor="serial",
        config={"logdir": str(tmp_path / "logs"), "stop_on_exception": False},
    )
    bad = flow.add_step("bad", func=runs.work, kwargs={"fail_at": "1"})
    flow.add_step("cleanup", func=runs.work, requires=((bad, S.failure),))
    worse = flow.add_step("worse", func=runs.work, kwargs={"fail_at": "1"})
    flow.add_step("after", func=runs.work, requires=((worse, S.success),))
    assert flow.run() is False
    run_id = flow.run_id
    flow.close()
    with read_store(store) as opened:
        marks = read_marks(opened, run_id)
        html = build_report(opened, run_id)
    assert marks == {
        ("bad", "1"): Mark.handled,
        ("cleanup", "1"): Mark.success,
        ("worse", "1"): Mark.unhandled,
        ("after", "1"): Mark.skipped,
    }
    shown = _invoke("show", run_id, "--store", store)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines() if "/1 " in line}
    assert f"{Mark.handled.symbol} failure (handled)" in lines["bad/1"]
    assert f"{Mark.unhandled.symbol} failure (unhandled)" in lines["worse/1"]
    assert f"{Mark.skipped.symbol} skipped" in lines["after/1"]
    as_json = json.loads(_invoke("show", run_id, "--store", store, "--json").output)
    assert {n["path"]: n["mark"] for n in as_json["nodes"]} == {
        "bad": "handled",
        "cleanup": "success",
        "worse": "unhandled",
        "after": "skipped",
    }
    assert re.findall(r'<li class="problem" data-mark="(\w+)"', html) == ["unhandled", "handled"]


def test_a_container_running_iterations_in_parallel_says_so(graphviz):
    # the note is drawn in the Graphviz graph (the list shown without it has no such note)
    structure = {
        "flow": "wide",
        "steps": [
            {"path": "box", "name": "box", "order": 0, "kind": "container",
             "repeats": {"count": 8}, "parallel": 3},
            {"path": "box_a", "name": "a", "order": 1, "parent": "box"},
        ],
    }  # fmt: skip
    statuses = {("box", "1"): S.success, **{("box_a", f"1.{k}"): S.success for k in range(1, 9)}}
    html = graph_section(structure, statuses)
    assert "8 iterations, up to 3 at once" in html


@pytest.mark.slow  # headless Chromium
def test_a_mark_by_hand_is_marked_in_show_and_the_report(tmp_path, browser):
    store = tmp_path / "marked.run.db"
    flow = seq.Sequent(name="marked", store=str(store), executor="serial",
                       config={"logdir": str(tmp_path / "logs")})  # fmt: skip
    flow.add_step("load", func=runs.work, kwargs={"fail_at": "1"})
    assert flow.run() is False
    run_id = flow.run_id
    flow.close()
    runs.mark_by_hand(store, run_id, ("load", "1"), "success", "alice", "loaded by hand")
    shown = _invoke("show", run_id, "--store", store)
    assert f"{Mark.marked.symbol} success (marked by alice: loaded by hand)" in shown.output
    page = report(store, run_id, tmp_path)
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    assert header_problems(dom) == []
    assert grid_columns(dom) == ["0", "1"]
    row = re.search(r'<tr id="i-load@1".*?</tr>', dom, re.S).group(0)
    assert re.findall(r'<td class="att m-(\w+)"', row) == ["unhandled", "marked"]
    assert "marked by alice: loaded by hand" in row
    # the mark is a line of the attempt that recorded it
    assert_filtered(browser, tmp_path / "p", page, "marked", [[], ["load/1"]])


# -- in headless Chromium ----------------------------------------------------------------------


@pytest.mark.slow
def test_seed_recovery_report_in_chromium(seed_store, browser, tmp_path):
    store_path, run_id = seed_store
    page = report(store_path, run_id, tmp_path)
    assert_non_trivial_png(runs.screenshot(browser, tmp_path / "p", page, tmp_path / "shot.png"))
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    assert 'class="badge success"' in dom
    assert header_problems(dom) == []  # the recover fixed everything
    assert "Failed in an earlier attempt, then succeeded when rerun: s1_s11_s111/1.2.2" in dom
    assert grid_columns(dom) == ["0", "1"]
    (first, drawn0), (second, drawn1) = timelines(dom)
    # every instance, with the two iterations of s1/1 and of each s11 instance (1.1, 1.2)
    assert len(drawn0) == len(drawn1) == 14 + 2 + 2 * 2
    assert_drawn_height(first, len(drawn0))
    assert_filtered(browser, tmp_path / "p", page, "failure", [["s1_s11_s111/1.2.2"], []])
    assert_filtered(browser, tmp_path / "p", page, "s2", [["s2/1"], ["s2/1"]])


CLICKS = """<script>
document.querySelector('section.attempt button[data-zoom=in]').click();
document.querySelector('svg.timeline g.row.group text.tog')
  .dispatchEvent(new MouseEvent('click', {bubbles: true}));
</script></body>"""


@pytest.mark.slow
def test_zooming_and_closing_a_group_redraw_the_timeline(seed_store, browser, tmp_path):
    store_path, run_id = seed_store
    page = report(store_path, run_id, tmp_path)
    clicked = tmp_path / "clicked.html"  # the page, then a script clicking as a reader would
    clicked.write_text(page.read_text(encoding="utf-8").replace("</body>", CLICKS, 1))
    (before, lines_before), _ = timelines(runs.dump_dom(browser, tmp_path / "p", page))
    (after, lines_after), (untouched, _) = timelines(
        runs.dump_dom(browser, tmp_path / "p", clicked)
    )
    assert int(after["width"]) - int(before["width"]) == 860  # the time axis twice as long
    assert untouched["width"] == before["width"]  # zoom buttons act on their own attempt
    assert [name for name, *_ in lines_after] == ["s1/1", "s2/1"]  # s1/1 closed: its lines gone
    assert len(lines_before) == 20
    assert_drawn_height(after, 2)


@pytest.mark.slow
def test_report_of_a_run_with_retries_in_chromium(retry_store, browser, tmp_path):
    store_path, run_id = retry_store
    page = report(store_path, run_id, tmp_path)
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    assert header_problems(dom) == []
    assert grid_columns(dom) == ["0"]
    ((attributes, drawn),) = timelines(dom)
    assert [name for name, *_ in drawn] == ["flaky/1", "after/1"]
    drawing = dom.split('<svg class="timeline"')[1].split("</svg>")[0]
    assert drawing.count('<rect class="retry"') == 2 and "\u00d73 tries" in drawing
    assert "try 1 failed" in dom and "try 2 failed" in dom
    assert re.search(r'<td class="att m-success" title="[^"]*try 3: [^"]*success', dom)
    assert_filtered(browser, tmp_path / "p", page, "failure", [[]])


@pytest.mark.slow
def test_report_of_an_interrupted_run_in_chromium(stopped_store, browser, tmp_path):
    store_path, run_id = stopped_store
    with read_store(store_path) as store:
        stopped = [
            f"{n['path']}/{n['sequence']}"
            for n in store.nodes(run_id)
            if n["status"] == "interrupted" and n["kind"] == "step"
        ]
    assert stopped == ["box_slow/1.1"]
    folder = runs.record_log_folder(store_path, run_id, store_path.parent / "logs")
    page = report(store_path, run_id, tmp_path)
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    assert 'class="badge interrupted"' in dom
    step_log = folder / "box_slow@1.1.log"
    log = step_log if step_log.is_file() else folder / "run.log"
    assert f'<a class="log" href="{log.resolve().as_uri()}">log</a>' in dom
    assert header_problems(dom) == [("interrupted", "box_slow/1.1")]
    assert grid_columns(dom) == ["0"]
    assert_filtered(browser, tmp_path / "p", page, "interrupted", [stopped])
    assert_filtered(browser, tmp_path / "p", page, "failure", [[]])


@pytest.mark.slow
def test_report_of_ten_thousand_instances_in_chromium(browser, tmp_path):
    store_path, run_id = runs.big(tmp_path)
    with read_store(store_path) as store:
        assert len(store.nodes(run_id)) >= 10_000
        began = time.perf_counter()
        html = build_report(store, run_id)
        took = time.perf_counter() - began
    assert took < 10, f"building the report took {took:.2f} s (the target is 2 s, idle)"
    page = tmp_path / "big.html"
    page.write_text(html, encoding="utf-8")
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    ready = int(re.search(r'data-ready-ms="(\d+)"', dom).group(1))
    assert ready < 10_000, f"the page's script was done {ready} ms after it began loading"
    failures = runs.big_failures()
    assert [name for _, name in header_problems(dom)] == failures
    assert [mark for mark, _ in header_problems(dom)] == ["unhandled", "unhandled", "handled"]
    assert grid_columns(dom) == ["0"]
    ((attributes, drawn),) = timelines(dom)
    assert len(drawn) < 200  # groups without a problem start closed
    filtered = assert_filtered(browser, tmp_path / "p", page, "failure", [sorted(failures)])
    assert "3 step instances match" in filtered
    # the header's link to a line in the timeline opens the groups above it, and only those
    linked = runs.dump_dom(browser, tmp_path / "p", page, "#t0-b_part_check@1.10.9")
    ((_, drawn),) = timelines(linked)
    names = [name for name, *_ in drawn]
    assert "b_part_check/1.10.9" in names and "a_part_check/1.10.10" in names
    assert "b_part_l00/1.3.1" not in names


def _invoke(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(arg) for arg in args])


def assert_non_trivial_png(path):
    """A 1400x1000 PNG with real content: many distinct byte values, many differing rows."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height) == (1400, 1000)
    chunks, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    channels = {2: 3, 6: 4, 0: 1, 4: 2}.get(colour, 4) * depth // 8
    stride = 1 + width * channels
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]
    blank = rows[-1]
    assert sum(1 for row in rows if row != blank) > height // 4, "the page is mostly blank"
    assert len(set(raw)) > 40, "too few distinct values for a rendered page"


def fail_with_markup() -> None:
    raise ValueError("x <!--<script> y </script> z")


@pytest.mark.slow
def test_markup_in_an_error_does_not_stop_the_page_in_chromium(browser, tmp_path):
    """``<!--<script>`` inside the page's JSON would make the HTML parser swallow the closing
    tag of its script element: nothing would be drawn."""
    store_path = tmp_path / "markup.run.db"
    flow = seq.Sequent(name="markup", store=str(store_path), executor="thread",
                       logging_level=logging.WARNING,
                       config={"logdir": str(tmp_path / "logs")})  # fmt: skip
    flow.add_step("bad", func=fail_with_markup)
    flow.add_step("after", func=int)
    assert flow.run() is False
    run_id = flow.run_id
    flow.close()
    page = report(store_path, run_id, tmp_path)
    html = page.read_text(encoding="utf-8")
    assert "<!--<script>" not in html.split("<body", 1)[1]  # escaped, as text and as data
    dom = runs.dump_dom(browser, tmp_path / "p", page)
    assert grid_columns(dom) == ["0"]
    ((_, drawn),) = timelines(dom)
    assert [name for name, *_ in drawn] == ["bad/1", "after/1"]
    assert header_problems(dom) == [("unhandled", "bad/1")]
