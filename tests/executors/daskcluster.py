"""A real Dask cluster for tests: a ``dask scheduler`` and ``dask worker`` processes.

Everything binds to 127.0.0.1 on ports the OS picks; each worker starts in its own working
folder; ``stop`` ends every process it started, by process group id (a worker's nanny and the
worker process it runs). Waits are bounded and poll a condition.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def wait_for(condition: Any, timeout: float = 60.0, what: str = "a condition") -> Any:
    """Poll ``condition()`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """A scheduler and named workers, as separate processes of this machine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = str(folder / "scheduler.json")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[2])]
            + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        self.env["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = "300s"
        self.env.pop("DASK_SCHEDULER_ADDRESS", None)

    def _start(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - kept for the process
        process = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli." + argv[0], *argv[1:]],
            cwd=cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_scheduler(self) -> str:
        self._start(
            "scheduler",
            [
                "dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                self.scheduler_file,
            ],
            self.folder / "scheduler",
        )
        wait_for(lambda: Path(self.scheduler_file).is_file(), what="the scheduler file")
        info = wait_for(self._read_file, what="the scheduler's address")
        self.address = info["address"]
        return self.address

    def _read_file(self) -> dict[str, Any] | None:
        try:
            return json.loads(Path(self.scheduler_file).read_text())
        except (OSError, ValueError):
            return None

    def start_worker(self, name: str, nthreads: int = 2, *extra: str) -> None:
        self._start(
            name,
            [
                "dask_worker",
                self.address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(nthreads),
                "--name",
                name,
                "--no-dashboard",
                "--local-directory",
                str(self.folder / name / "dask"),
                *extra,
            ],
            self.folder / name,
        )

    def wait_workers(self, client: Any, names: list[str], timeout: float = 60.0) -> None:
        def joined() -> bool:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            return set(names) <= {str(w.get("name")) for w in workers}

        wait_for(joined, timeout, f"workers {names}")

    def stop_one(self, name: str) -> None:
        """Stop one process (a worker and its nanny) by its process group id."""
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
            for_group = process.pid
            try:
                os.killpg(for_group, signal.SIGKILL)  # anything left in its group
            except ProcessLookupError:
                pass
        self.processes.clear()
