"""Where a run's logs go, and making those folders safely: private, owned, never through a link.

Mutates the file system only: folders and log files under a run's log folder.

    <logdir>/                 config['logdir'], or beside the store: <store stem>.logs/
      <flow name>/            made with the folder mode (private: 0700)
        <run id>/             one per run, shared by its recover attempts (those given no
                              logdir continue in the folder the run recorded)
          run.log             files made with the file mode (private: 0600)
          <path>@<sequence>.log

Every folder from ``logdir`` down is opened with ``O_NOFOLLOW`` and checked before anything is
written: a symbolic link, something that is not a folder, or a folder that belongs to another
user is refused with ``LogFolderError``. The folders below it are then reached through the open
folder descriptors and files are opened with ``O_NOFOLLOW``, so a link planted after the check
is refused too, never written through.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO

from .errors import LogFolderError

#: Folder and file modes for each ``config['log_permissions']`` value.
PERMISSIONS: dict[str, tuple[int, int]] = {
    "private": (0o700, 0o600),
    "group": (0o750, 0o640),
    "shared": (0o755, 0o644),
}
DEFAULT_PERMISSIONS = "private"

#: The name of a run's own log in its folder.
RUN_LOG = "run.log"

#: The suffix of a store file that the default log folder's name leaves out.
STORE_SUFFIX = ".run.db"

_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def safe_name(part: str) -> str:
    """``part`` with every character outside ``[A-Za-z0-9_.@-]`` replaced by ``_``."""
    name = _UNSAFE.sub("_", part) or "_"
    return "_" if name in (".", "..") else name


def default_logdir(store_path: str) -> Path:
    """The log folder a flow uses when ``config['logdir']`` is not set.

    Beside the store, named after it: ``nightly.run.db`` -> ``nightly.logs``. For a
    ``":memory:"`` store, a folder of this user's own in the temporary folder
    (``<temp>/sequent-logs-<uid>``), made private when it is first made.
    """
    if store_path == ":memory:":
        return Path(tempfile.gettempdir()) / f"sequent-logs-{_uid()}"
    path = Path(store_path)
    name = path.name
    if name.endswith(STORE_SUFFIX) and name != STORE_SUFFIX:
        stem = name[: -len(STORE_SUFFIX)]
    else:
        stem = path.stem or name
    return path.parent / f"{stem}.logs"


class LogFolder:
    """Mutates one open, checked log folder: makes checked subfolders and opens files in it.

    Made by ``open_log_root``; holds a descriptor of the folder, so what is made in it is made
    in the folder that was checked even if its path is changed meanwhile. Close it after use.
    """

    def __init__(self, path: Path, fd: int, modes: tuple[int, int]) -> None:
        self.path = path
        self.fd = fd
        self.folder_mode, self.file_mode = modes

    def folder(self, name: str) -> LogFolder:
        """The subfolder ``name`` (made with the folder mode unless it exists), opened and checked.

        Raises ``LogFolderError`` when it is a link, not a folder, or another user's.
        """
        name = safe_name(name)
        path = self.path / name
        try:
            os.mkdir(name, self.folder_mode, dir_fd=self.fd)
        except FileExistsError:
            made = False
        except OSError as exc:
            raise _cannot(path, "make", exc) from exc
        else:
            made = True
        fd = _open_folder(path, name, self.fd)
        if made:
            os.chmod(fd, self.folder_mode)  # exactly the mode asked for, whatever the umask
        return LogFolder(path, fd, (self.folder_mode, self.file_mode))

    def open(self, name: str) -> IO[str]:
        """The file ``name`` in this folder opened for appending text (made with the file mode).

        Raises ``LogFolderError`` when it is a link or not a regular file of this user's.
        """
        fd = self.open_fd(name)
        try:
            return open(fd, "a", encoding="utf-8", closefd=True)  # noqa: SIM115
        except BaseException:
            os.close(fd)
            raise

    def open_fd(self, name: str) -> int:
        """A descriptor of the file ``name`` in this folder, opened to append (``O_APPEND``).

        Made with the file mode if missing. Raises ``LogFolderError`` when it is a link or not
        a regular file of this user's. The caller closes it.
        """
        try:  # a file made now is a regular file of ours, with no more than the file mode
            return os.open(name, _APPEND | _NOFOLLOW | os.O_EXCL, self.file_mode, dir_fd=self.fd)
        except FileExistsError:
            pass
        except OSError:
            pass  # said below, with the reason
        path = self.path / name
        try:
            fd = os.open(name, _APPEND | _NOFOLLOW, self.file_mode, dir_fd=self.fd)
        except OSError as exc:
            if os.path.islink(path):
                raise _refused(path, "is a symbolic link", "remove the link", FILE) from exc
            raise _cannot(path, "open", exc, FILE) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _refused(path, "is not a regular file", "move it aside", FILE)
            _check_owner(path, info, FILE)
            if stat.S_IMODE(info.st_mode) & ~self.file_mode:
                os.chmod(fd, self.file_mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def close(self) -> None:
        """Close the folder's descriptor (files opened in it stay open)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> LogFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LogFolder({str(self.path)!r})"


class RunFolder:
    """Makes the log folder of one run when called with its run id, and keeps it open.

    Nothing is touched before the call: the store calls it inside the transaction that records
    the run's start, after every other check, so a bad input leaves no folder behind and a
    refused folder (``LogFolderError``) leaves nothing recorded. ``logdir`` is the one the flow
    was given (``config['logdir']``, ``--logdir``), or None: then a recover continues in the
    folder its run recorded, and a new run logs under ``default``.
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str] | None,
        flow_name: str,
        permissions: str,
        default: str | os.PathLike[str],
    ) -> None:
        self.logdir = logdir
        self.flow_name = flow_name
        self.permissions = permissions
        self.default = default
        #: The run's folder, once made.
        self.folder: LogFolder | None = None

    def __call__(self, run_id: str, recorded: str | None = None) -> str:
        """Make (or open) the run's folder and its run log; return the folder.

        ``<logdir>/<flow>/<run id>/``; with no ``logdir`` given, ``recorded`` (the folder the
        run's latest attempt logged into, for a recover) if there is one, else
        ``<default>/<flow>/<run id>/``. Every folder from the root down is checked alike.
        """
        self.close()  # called again: a transaction retried after waiting for the write lock
        root, flow_name = self.logdir or self.default, self.flow_name
        if self.logdir is None and recorded:
            run = Path(recorded)  # <its logdir>/<flow>/<run id>, as made below
            root, flow_name, run_id = run.parent.parent, run.parent.name, run.name
        with open_log_root(root, self.permissions) as opened:
            with opened.folder(flow_name) as flow:
                folder = flow.folder(run_id)
        try:
            folder.open(RUN_LOG).close()
        except BaseException:
            folder.close()
            raise
        self.folder = folder
        return str(folder.path)

    def close(self) -> None:
        """Close the run folder's descriptor, if it was made."""
        if self.folder is not None:
            self.folder.close()
            self.folder = None


def open_log_root(
    logdir: str | os.PathLike[str], permissions: str = DEFAULT_PERMISSIONS
) -> LogFolder:
    """The folder ``logdir`` (made, with its missing parents, if it does not exist), checked.

    Raises ``LogFolderError`` when ``logdir`` is a symbolic link, not a folder, belongs to
    another user, or cannot be made; nothing is written then. A folder made here gets the
    folder mode of ``permissions`` (see ``PERMISSIONS``); the private folder in the temporary
    folder (``default_logdir`` of a ``":memory:"`` store) is also made private if it is not.
    """
    modes = PERMISSIONS[permissions]
    path = Path(os.path.abspath(os.fspath(logdir)))
    made = False
    if not os.path.lexists(path):
        try:
            os.makedirs(path.parent, mode=modes[0], exist_ok=True)
            os.mkdir(path, modes[0])
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise _cannot(path, "make", exc) from exc
    fd = _open_folder(path, str(path), None)
    try:
        private_temp = path == default_logdir(":memory:")
        if made or (private_temp and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077):
            os.chmod(fd, 0o700 if private_temp else modes[0])
    except BaseException:
        os.close(fd)
        raise
    return LogFolder(path, fd, modes)


def check_log_root(logdir: str | os.PathLike[str], flow_name: str) -> None:
    """Refuse now what ``open_log_root`` and ``LogFolder.folder`` would refuse; touch nothing.

    ``logdir`` and the flow's folder in it, where they exist, must be folders of this user's
    and not links, so a run can refuse its log folder before it creates its store. Raises
    ``LogFolderError`` with the same words as the run would.
    """
    path = Path(os.path.abspath(os.fspath(logdir)))
    for candidate in (path, path / safe_name(flow_name)):
        if not os.path.lexists(candidate):
            return
        os.close(_open_folder(candidate, str(candidate), None))


def _open_folder(path: Path, name: str, parent_fd: int | None) -> int:
    """A descriptor of the folder ``name`` (relative to ``parent_fd``), never through a link."""
    try:
        fd = os.open(name, _DIRECTORY | _NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        if os.path.islink(path):
            raise _refused(
                path,
                f"is a symbolic link (to {os.readlink(path)!r})",
                "remove the link, or set logdir to the real folder",
            ) from exc
        if os.path.exists(path) and not os.path.isdir(path):
            raise _refused(path, "is not a folder", "move it aside, or set another logdir") from exc
        raise _cannot(path, "open", exc) from exc
    try:
        _check_owner(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


#: What ``_refused`` and ``_cannot`` call the path: a folder of logs, or one log file in it.
FOLDER, FILE = "log folder", "log file"


def _check_owner(path: Path, info: os.stat_result, kind: str = FOLDER) -> None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise _refused(
            path,
            f"belongs to another user ({_user_name(info.st_uid)}, not {_user_name(os.geteuid())})",
            "set logdir to a folder of your own (config['logdir'] or --logdir)",
            kind,
        )


def _refused(path: Path, what: str, fix: str, kind: str = FOLDER) -> LogFolderError:
    return LogFolderError(
        f"the {kind} {str(path)!r} {what}; it was refused and nothing was written. To fix "
        f"it, {fix}"
    )


def _cannot(path: Path, verb: str, exc: OSError, kind: str = FOLDER) -> LogFolderError:
    return LogFolderError(
        f"cannot {verb} the {kind} {str(path)!r} ({exc.strerror or exc}); nothing was "
        f"written. Check its permissions, or set logdir (config['logdir'] or --logdir) to a "
        f"folder you can write"
    )


def _uid() -> str:
    return str(os.geteuid()) if hasattr(os, "geteuid") else os.environ.get("USERNAME", "user")


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name!r}, uid {uid}"
    except (ImportError, KeyError):
        return f"uid {uid}"
