"""The HTML run report: built from the store alone, self-contained, opened in headless Chromium."""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import sequent as seq
from sequent.cli import cli
from sequent.compiler import NodeKey
from sequent.compiler.dot import to_dot
from sequent.plan import read_store
from sequent.report import EXPANDED_LIMIT, build_report, plan_from_structure, timeline_rows

S = seq.StepStatus

# The seed's recovery example, as its documentation prints it (it needs no typo fix).
SEED_RECOVERY = (Path(__file__).parent.parent / "examples" / "seed_recovery.py").read_text()

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory):
    """The store of the seed's recovery example, run as a user runs it: a failure, a recover."""
    folder = tmp_path_factory.mktemp("seed")
    (folder / "runly04.py").write_text(SEED_RECOVERY, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "runly04.py"], cwd=folder, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert re.findall(r"Processing finished with: (\w+)", done.stderr) == ["failure", "success"]
    return folder / "runly04.run.db"


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


def bars(html):
    return re.findall(r'<rect class="bar s-(\w+)" data-node="([^"]+)"', html)


def assert_self_contained(html):
    assert "<link" not in html
    assert not re.search(r"\bsrc\s*=", html)
    for url in re.findall(r"https?://[^\s\"'<>)]+", html):
        assert url.startswith(("http://www.w3.org/", "https://www.w3.org/")), url
    assert "@import" not in html and "url(" not in html


def test_report_of_the_seed_recovery_runs(seed_store, tmp_path):
    with read_store(seed_store) as store:
        (run,) = store.runs()
        executed = executed_rows(store, run["run_id"])
    assert len(executed) == 8 + 4  # up to the failure at 1.2.2, then the recover's four
    page = tmp_path / "report.html"
    result = _invoke("report", run["run_id"], "--store", seed_store, "-o", page)
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert_self_contained(html)
    drawn = bars(html)
    assert len(drawn) == len(executed)
    assert sorted(name for _, name in drawn) == sorted(name for _, name in executed)
    assert ("failure", "s1_s11_s111/1.2.2") in drawn and ("success", "s1_s11_s111/1.2.2") in drawn
    assert html.count('class="mark replayed"') == 7  # skipped as recovered in attempt 1
    assert html.count('class="mark skipped"') == 3  # never reached after the failure
    assert html.count('<section class="attempt"') == 2
    if shutil.which("dot"):
        assert html.count("<svg") == 3  # two timelines and the graph
        assert 'class="cluster"' in html
    assert f"Run {run['run_id']}" in html and 'class="badge success"' in html


def test_report_shows_retries(tmp_path):
    tries = tmp_path / "tries"

    def flaky():
        count = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(count + 1))
        if count < 2:
            raise RuntimeError(f"try {count + 1} failed")

    store = tmp_path / "flaky.run.db"
    flow = seq.Sequent(
        name="flaky",
        store=str(store),
        executor="serial",
        logging_level=logging.WARNING,
        config={"logdir": str(tmp_path / "logs")},
    )
    flow.add_step("flaky", func=flaky, retries=2, retry_delay=0.05)
    assert flow.run() is True
    run_id = flow.run_id
    flow.close()
    with read_store(store) as opened:
        html = build_report(opened, run_id)
        (row,) = timeline_rows(
            opened.nodes(run_id, attempt=0), opened.events(run_id), {"flaky": 0.05}
        )
    (first_start, first_end, first_error), (second_start, second_end, _) = row.retries
    assert first_error == "RuntimeError: try 1 failed"
    assert first_start <= first_end <= second_start <= second_end <= row.start <= row.end
    assert second_start - first_end == pytest.approx(0.05)  # the back-off, then the try
    assert row.start - second_end >= 0.1 - 0.005  # doubled for the third try
    assert len(bars(html)) == 1
    assert html.count('<rect class="retry"') == 2
    assert "\u00d73 tries" in html
    assert "try 1 failed" in html and "try 2 failed" in html


def test_graph_falls_back_to_a_list_without_graphviz(seed_store, monkeypatch):
    monkeypatch.setattr("sequent.report.shutil.which", lambda name: None)
    with read_store(seed_store) as store:
        html = build_report(store, store.runs()[0]["run_id"])
    assert "Graphviz&#x27;s dot program is not installed" in html
    assert 'class="graph-list"' in html
    assert "<b>s111</b>" in html and "requires s1_s11_s111:success" in html
    assert html.count("<svg") == 2  # the timelines only


def test_recorded_structure_draws_the_same_graph_as_the_flow(seed_store):
    with read_store(seed_store) as store:
        run_id = store.runs()[0]["run_id"]
        structure = store.structure(run_id)
        statuses = {
            NodeKey(node["path"], node["sequence"]): S(node["status"])
            for node in store.nodes(run_id)
        }
    rebuilt = plan_from_structure(structure)
    flow = seq.Sequent(name="runly04", store=":memory:")
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", repeats=[1, 2])
    s111 = s11.add_step("s111", func=print)
    s11.add_step("s112", func=print, requires=((s111, S.success),))
    s1.add_step("s12", func=print, requires=((s11, S.success),))
    flow.add_step("s2", func=print, requires=((s1, S.success),))
    original = flow.compile()
    for expanded in (False, True):
        assert to_dot(rebuilt, expanded, statuses) == to_dot(original, expanded, statuses)


def test_a_thousand_step_run_reports_quickly_and_readably(tmp_path):
    store = tmp_path / "big.run.db"
    flow = seq.Sequent(
        name="big",
        store=str(store),
        executor="serial",
        logging_level=logging.WARNING,
        config={"logdir": str(tmp_path / "logs")},
    )
    box = flow.add_step("box", repeats=range(250))
    a = box.add_step("a", func=print, args=("a",))
    b = box.add_step("b", func=print, args=("b",), requires=((a, S.success),))
    c = box.add_step("c", func=print, args=("c",), requires=((a, S.success),))
    box.add_step("d", func=print, args=("d",), requires=((b, S.success), (c, S.success)))
    assert flow.run() is True
    run_id = flow.run_id
    flow.close()
    with read_store(store) as opened:
        html = build_report(opened, run_id)
    assert len(bars(html)) == 1000
    assert len(html) < 2_000_000
    assert f"more than {EXPANDED_LIMIT} step instances" in html  # one graph node per step
    page = tmp_path / "big.html"
    page.write_text(html, encoding="utf-8")
    browser = chromium_or_skip(tmp_path)
    dom = dump_dom(browser, tmp_path, page)
    assert len(bars(dom)) == 1000
    shot = screenshot(browser, tmp_path, page)
    assert_non_trivial_png(shot)


# -- headless Chromium -----------------------------------------------------------------------


def _invoke(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(arg) for arg in args])


def chromium_or_skip(tmp_path) -> str:
    """The Chromium program, or skip with the reason when it truly cannot run here."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        program = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if program:
            break
    else:
        pytest.skip("no chromium installed (.ci/run installs it through apt-get)")
    probe = subprocess.run(
        [program, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'probe'}", "--dump-dom",
         "data:text/html,<p>ok</p>"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if "<p>ok</p>" not in probe.stdout:
        pytest.skip(f"chromium cannot run here: {probe.stderr.strip()[-500:]}")
    return program


def dump_dom(program, tmp_path, page, fragment=""):
    done = subprocess.run(
        [program, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom",
         page.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(program, tmp_path, page):
    shot = tmp_path / "screenshot.png"
    done = subprocess.run(
        [program, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}",
         f"--screenshot={shot}", "--window-size=1400,1000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file(), done.stderr[-2000:]
    return shot


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


def test_seed_report_in_headless_chromium(seed_store, tmp_path):
    browser = chromium_or_skip(tmp_path)
    with read_store(seed_store) as store:
        run_id = store.runs()[0]["run_id"]
        executed = executed_rows(store, run_id)
        page = tmp_path / "seed.html"
        page.write_text(build_report(store, run_id), encoding="utf-8")
    shot = screenshot(browser, tmp_path, page)
    assert_non_trivial_png(shot)
    dom = dump_dom(browser, tmp_path, page)
    drawn = bars(dom)
    assert len(drawn) == len(executed) == 12
    assert {name for _, name in drawn} == {name for _, name in executed}
    # the filter in the page (given in the address) hides every other row
    filtered = dump_dom(browser, tmp_path, page, "#filter=s2")
    rows = re.findall(r'<g class="row" data-node="([^"]+)"[^>]*>', filtered)
    tags = re.findall(r'<g class="row" [^>]*>', filtered)
    assert len(tags) == len(rows) == 14 + 14  # every instance reached, in each attempt
    shown = [name for name, tag in zip(rows, tags, strict=True) if "display: none" not in tag]
    assert shown == ["s2/1", "s2/1"]  # skipped in attempt 0, run in attempt 1
