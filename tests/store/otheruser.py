"""Running a command as another Unix user (``nobody``, uid 65534), for tests of shared machines.

The command runs under ``setpriv --reuid=65534 --regid=65534 --clear-groups``: no
CAP_DAC_OVERRIDE, so folder permissions apply to it. When this Python lives in a folder that
user cannot reach (a private home such as ``/root``), the command runs in a mount namespace of
its own (``unshare --mount``) in which that home is covered by a world-readable empty folder
holding only the interpreter's installation, bound read-only at the same path; nothing outside
the namespace changes. ``why_not()`` says why no second user can be had here (tests skip with it).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UID = GID = 65534
ROOT = Path(__file__).resolve().parents[2]


def _prefix() -> Path:
    """The folder holding this interpreter's installation (and its site-packages)."""
    return Path(sys.base_prefix).resolve()


def _private_home() -> Path | None:
    """The first folder above the interpreter that ``nobody`` cannot enter, if any."""
    for folder in reversed(_prefix().parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            return folder
    return None


def command(argv: list[str], mount: str) -> list[str]:
    """``argv`` wrapped to run as uid 65534; ``mount`` is an empty folder to mount on."""
    drop = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--"]
    argv = [str(Path(sys.executable).resolve()), *argv[1:]] if argv[0] == sys.executable else argv
    home = _private_home()
    if home is None:
        return drop + argv
    prefix = _prefix()
    script = " && ".join(
        [
            f"mount --bind {shlex.quote(str(prefix))} {mount}",
            f"mount -t tmpfs -o mode=0755 sequent-test {shlex.quote(str(home))}",
            f"mkdir -p {shlex.quote(str(prefix))}",
            f"mount --bind -o ro {mount} {shlex.quote(str(prefix))}",
            f"exec {shlex.join(drop + argv)}",
        ]
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def run(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as uid 65534 with ``env`` (PYTHONPATH set to this tree); capture output."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/nonexistent", **(env or {})}
    mount = tempfile.mkdtemp(prefix="sequent-test-mount-")
    try:
        return subprocess.run(
            command(argv, mount),
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        os.rmdir(mount)


@functools.lru_cache(maxsize=1)
def why_not() -> str | None:
    """None when a command can run as uid 65534 here, else the reason it cannot."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "running as another user needs root (to drop to uid 65534); this is not root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if _private_home() is not None and shutil.which("unshare") is None:
        return (
            f"this Python lives under {_private_home()}, which uid 65534 cannot enter, and "
            f"unshare is missing"
        )
    try:
        done = run([sys.executable, "-c", "import os, sequent; print(os.getuid())"], timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot start a process as uid 65534: {exc}"
    if done.returncode != 0 or done.stdout.strip() != str(UID):
        return f"cannot run Python as uid 65534 here: {done.stderr.strip()[-300:]}"
    return None
