"""Log folders (SPEC 3.7): beside the store, private, recorded per attempt, never through a link.

Folders are 0700 and files 0600 unless ``config['log_permissions']`` loosens them; a log folder
that is a symbolic link or another user's is refused with ``LogFolderError`` before anything is
written to the store or through the link. Tests as a second Unix user (uid 65534, see
``otheruser``) check that two users of one machine do not interfere.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sequent as seq
from sequent.errors import LogFolderError, SequentError
from sequent.logfolder import default_logdir

from . import otheruser


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def umask() -> Iterator[None]:
    """A permissive umask, so the modes seen are the ones sequent asked for."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def build(store: str, **config) -> seq.Sequent:
    flow = seq.Sequent(name="nightly", store=store, executor="serial", config=config)

    def talk() -> str:
        import logging

        logging.getLogger(seq.current().logger_name).info("secret output")
        if os.environ.get("SEQUENT_TEST_FAIL"):
            raise RuntimeError("told to fail")
        return "ok"

    flow.add_step("talk", func=talk)
    return flow


def attempts_logdirs(store: Path) -> list[str]:
    conn = sqlite3.connect(store)
    try:
        return [row[0] for row in conn.execute("SELECT logdir FROM attempts ORDER BY attempt")]
    finally:
        conn.close()


def test_the_default_folder_is_beside_the_store_private_and_recorded(tmp_path, monkeypatch):
    store = tmp_path / "nightly.run.db"
    monkeypatch.setenv("SEQUENT_TEST_FAIL", "1")
    with build(str(store)) as flow:
        assert flow.run() is False
    monkeypatch.delenv("SEQUENT_TEST_FAIL")
    with build(str(store), ) as again:
        again.run_mode = seq.RunMode.recover
        assert again.run() is True
    root = tmp_path / "nightly.logs"
    folder = root / "nightly" / flow.run_id
    assert sorted(p.name for p in folder.iterdir()) == ["run.log", "talk@1.log"]
    for path in (root, root / "nightly", folder):
        assert mode(path) == 0o700, path
    for path in folder.iterdir():
        assert mode(path) == 0o600, path
    assert (folder / "talk@1.log").read_text().count("secret output") == 2
    assert attempts_logdirs(store) == [str(folder), str(folder)]
    with seq.store.open_store(str(store)) as reader:
        assert [a["logdir"] for a in reader.attempts(flow.run_id)] == [str(folder)] * 2


@pytest.mark.parametrize(
    "permissions, folders, files",
    [("private", 0o700, 0o600), ("group", 0o750, 0o640), ("shared", 0o755, 0o644)],
)
def test_log_permissions_sets_the_modes(tmp_path, permissions, folders, files):
    with build(str(tmp_path / "s.run.db"), logdir=str(tmp_path / "logs"),
               log_permissions=permissions) as flow:  # fmt: skip
        assert flow.run() is True
    folder = tmp_path / "logs" / "nightly" / flow.run_id
    for path in (tmp_path / "logs", folder.parent, folder):
        assert mode(path) == folders, path
    for path in folder.iterdir():
        assert mode(path) == files, path


def test_a_bad_log_permissions_value_is_a_config_error(tmp_path):
    with pytest.raises(seq.errors.ConfigError, match="log_permissions"):
        build(str(tmp_path / "s.run.db"), log_permissions="0777")


def test_an_in_memory_store_logs_in_a_private_folder_of_the_user(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    private = tmp_path / f"sequent-logs-{os.geteuid()}"
    assert default_logdir(":memory:") == private
    private.mkdir(mode=0o755)  # left loose by something else of ours: made private again
    private.chmod(0o755)
    with build(":memory:") as flow:
        assert flow.run() is True
    assert mode(private) == 0o700
    assert (private / "nightly" / flow.run_id / "talk@1.log").exists()


def test_the_default_folder_name_drops_the_store_suffix():
    assert default_logdir("/data/nightly.run.db") == Path("/data/nightly.logs")
    assert default_logdir("/data/nightly.sqlite") == Path("/data/nightly.logs")
    assert default_logdir("store") == Path("store.logs")


def refused(flow: seq.Sequent, *words: str) -> LogFolderError:
    with pytest.raises(LogFolderError) as caught:
        flow.run()
    assert isinstance(caught.value, SequentError) and isinstance(caught.value, PermissionError)
    for word in words:
        assert word in str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value


def runs_in(store: Path) -> int:
    if not store.exists():
        return 0
    conn = sqlite3.connect(store)
    try:
        return conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()


def test_a_symlinked_log_folder_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "logs"
    link.symlink_to(target)
    store = tmp_path / "s.run.db"
    with build(str(store), logdir=str(link)) as flow:
        refused(flow, str(link), "symbolic link", "nothing was written")
    assert list(target.iterdir()) == []
    assert runs_in(store) == 0
    # One level down: the flow's folder planted as a link.
    link.unlink()
    link.mkdir()
    (link / "nightly").symlink_to(target)
    with build(str(store), logdir=str(link)) as flow:
        refused(flow, "nightly", "symbolic link")
    assert list(target.iterdir()) == []
    assert runs_in(store) == 0


def failed_run_and_victim(tmp_path: Path, monkeypatch: Any) -> tuple[Path, Path, Any, Path, Path]:
    """A failed run of ``build`` logging under ``tmp_path/logs``, and a file a planted link
    would point at: (store, logs, the flow, the run's log folder, the victim file)."""
    store, logs = tmp_path / "s.run.db", tmp_path / "logs"
    monkeypatch.setenv("SEQUENT_TEST_FAIL", "1")
    with build(str(store), logdir=str(logs)) as flow:
        assert flow.run() is False
    monkeypatch.delenv("SEQUENT_TEST_FAIL")
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    return store, logs, flow, logs / "nightly" / flow.run_id, victim


def test_a_recover_into_a_planted_link_writes_nothing(tmp_path, monkeypatch):
    store, logs, flow, folder, victim = failed_run_and_victim(tmp_path, monkeypatch)
    # The run's log replaced by a link to a file the link's maker wants written.
    (folder / "run.log").unlink()
    (folder / "run.log").symlink_to(victim)
    with build(str(store), logdir=str(logs)) as again:
        again.run_mode = seq.RunMode.recover
        refused(again, "run.log", "symbolic link")
    assert victim.read_text() == "untouched\n"
    assert runs_in(store) == 1
    # The run's whole folder replaced by a link.
    shutil.rmtree(folder)
    folder.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with build(str(store), logdir=str(logs)) as again:
        again.run_mode = seq.RunMode.recover
        refused(again, flow.run_id, "symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert runs_in(store) == 1


def test_a_step_log_planted_as_a_link_is_refused_and_the_run_log_says_so(tmp_path, monkeypatch):
    store, logs, flow, folder, victim = failed_run_and_victim(tmp_path, monkeypatch)
    (folder / "talk@1.log").unlink()
    (folder / "talk@1.log").symlink_to(victim)
    with build(str(store), logdir=str(logs)) as again:
        again.run_mode = seq.RunMode.recover
        assert again.run() is True  # a step's log is not worth failing the run for
    assert victim.read_text() == "untouched\n"
    run_log = (folder / "run.log").read_text()
    warning = (
        f"[ WARNING ][ Could not write the log of step talk/1: the log file "
        f"'{folder / 'talk@1.log'}' is a symbolic link; it was refused"
    )
    assert warning in run_log, run_log
    assert "log folder" not in run_log


def test_a_log_folder_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    theirs = tmp_path / "logs"
    theirs.mkdir()
    os.chown(theirs, otheruser.UID, otheruser.GID)
    store = tmp_path / "s.run.db"
    with build(str(store), logdir=str(theirs)) as flow:
        refused(flow, "belongs to another user", f"uid {otheruser.UID}", "logdir")
    assert list(theirs.iterdir()) == []
    assert runs_in(store) == 0


SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    import sequent as seq

    flow = seq.Sequent(name="mine", store=":memory:", executor="serial",
                       logging_level=logging.INFO)
    flow.add_step("talk", func=lambda: logging.getLogger("sequent.mine").info(
        "secret of %d", os.getuid()))
    try:
        ok = flow.run()
    except seq.SequentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        sys.exit(2)
    print(flow.run_id)
    sys.exit(0 if ok else 1)
    """
)


@pytest.fixture
def shared_temp() -> Iterator[Path]:
    """A temporary folder like /tmp (mode 1777) that every user can write."""
    path = Path(tempfile.mkdtemp(prefix="sequent-users-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_users_run_flows_on_one_machine_without_interfering(shared_temp):
    reason = otheruser.why_not()
    if reason:
        pytest.skip(f"no second user: {reason}")
    script = shared_temp / "mine.py"
    script.write_text(SCRIPT)
    script.chmod(0o644)
    env = {"TMPDIR": str(shared_temp)}

    def as_root() -> tuple[int, str, str]:
        import subprocess

        done = subprocess.run([sys.executable, str(script)], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        return done.returncode, done.stdout.strip(), done.stderr

    def as_other() -> tuple[int, str, str]:
        done = otheruser.run([sys.executable, str(script)], env=env)
        return done.returncode, done.stdout.strip(), done.stderr

    status, their_run, err = as_other()
    assert status == 0, err
    theirs = shared_temp / f"sequent-logs-{otheruser.UID}"
    assert os.lstat(theirs).st_uid == otheruser.UID and mode(theirs) == 0o700
    their_log = theirs / "mine" / their_run / "talk@1.log"
    assert f"secret of {otheruser.UID}" in their_log.read_text()
    # The other user plants a link where this user's private folder will be made.
    trap = shared_temp / "trap"
    plant = otheruser.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        os.mkdir({str(trap)!r}, 0o777); os.chmod({str(trap)!r}, 0o777)
        os.symlink({str(trap)!r}, {str(shared_temp / 'sequent-logs-0')!r})
    """)])  # fmt: skip
    assert plant.returncode == 0, plant.stderr
    status, out, err = as_root()
    assert status == 2, err
    assert "symbolic link" in err and "sequent-logs-0" in err
    assert list(trap.iterdir()) == []
    # Without the link, this user's runs go to a private folder of its own.
    (shared_temp / "sequent-logs-0").unlink()
    status, my_run, err = as_root()
    assert status == 0, err
    mine = shared_temp / "sequent-logs-0"
    assert os.lstat(mine).st_uid == 0 and mode(mine) == 0o700
    assert "secret of 0" in (mine / "mine" / my_run / "talk@1.log").read_text()
    # Each user's logs are closed to the other, and the other's run was not disturbed.
    my_log = mine / "mine" / my_run / "run.log"
    peek = otheruser.run([sys.executable, "-c", f"open({str(my_log)!r})"])
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    status, second_run, err = as_other()
    assert status == 0, err
    assert sorted(p.name for p in (theirs / "mine").iterdir()) == sorted([their_run, second_run])


def failed_run(store: Path, logs: Path, monkeypatch) -> tuple[str, Path]:
    """A failed run of ``nightly`` that logged under ``logs``: its id and its folder."""
    monkeypatch.setenv("SEQUENT_TEST_FAIL", "1")
    with build(str(store), logdir=str(logs)) as flow:
        assert flow.run() is False
    monkeypatch.delenv("SEQUENT_TEST_FAIL")
    return flow.run_id, logs / "nightly" / flow.run_id


def recover(store: Path, **config) -> seq.Sequent:
    flow = build(str(store), **config)
    flow.run_mode = seq.RunMode.recover
    return flow


def test_a_recover_without_logdir_continues_in_the_folder_its_run_recorded(tmp_path, monkeypatch):
    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    with recover(store) as again:
        assert again.run() is True
    assert again.run_id == run_id
    assert not default_logdir(str(store)).exists()
    assert attempts_logdirs(store) == [str(folder)] * 2
    assert (folder / "talk@1.log").read_text().count("secret output") == 2
    run_log = (folder / "run.log").read_text()
    assert "(recover, attempt 1)" in run_log and f"logs in {folder}" in run_log
    assert run_log.count("Processing finished with") == 2


def test_an_explicit_logdir_still_wins_over_the_recorded_folder(tmp_path, monkeypatch):
    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    with recover(store, logdir=str(tmp_path / "other")) as again:
        assert again.run() is True
    other = tmp_path / "other" / "nightly" / run_id
    assert attempts_logdirs(store) == [str(folder), str(other)]
    assert "(recover, attempt 1)" in (other / "run.log").read_text()
    assert "(recover, attempt 1)" not in (folder / "run.log").read_text()


def test_a_recorded_folder_that_became_a_link_is_refused(tmp_path, monkeypatch):
    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    shutil.rmtree(folder)
    (tmp_path / "elsewhere").mkdir()
    folder.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with recover(store) as again:
        refused(again, run_id, "symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert not default_logdir(str(store)).exists()
    assert attempts_logdirs(store) == [str(folder)]


def test_a_recorded_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    os.chown(folder, otheruser.UID, otheruser.GID)
    with recover(store) as again:
        refused(again, run_id, "belongs to another user", f"uid {otheruser.UID}")
    assert not default_logdir(str(store)).exists()
    assert attempts_logdirs(store) == [str(folder)]


def test_a_refused_default_folder_does_not_stop_a_recover_that_logs_elsewhere(
    tmp_path, monkeypatch
):
    """The default folder is not where such a recover logs, so its refusal is not checked."""
    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    default_logdir(str(store)).symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with recover(store) as again:
        assert again.run() is True
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert attempts_logdirs(store) == [str(folder)] * 2


def test_a_recover_after_a_mark_continues_in_the_folder_of_the_last_attempt_that_logged(
    tmp_path, monkeypatch
):
    """A mark's attempt logs nothing (``logdir`` NULL): the recover looks past it."""
    from sequent.compiler import NodeKey
    from sequent.marks import record_mark

    store = tmp_path / "s.run.db"
    run_id, folder = failed_run(store, tmp_path / "custom", monkeypatch)
    with seq.store.open_store(str(store)) as opened:
        record_mark(opened, run_id, NodeKey("talk", 1), seq.StepStatus.failure, "again")
    with recover(store) as again:
        assert again.run() is True
    assert attempts_logdirs(store) == [str(folder), None, str(folder)]
    assert not default_logdir(str(store)).exists()
