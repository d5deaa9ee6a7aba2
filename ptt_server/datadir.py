"""The data directory's rules: one server at a time, files only we can read, owned by us.

* ``lock_directory`` takes an exclusive ``flock(2)`` on the directory itself, not on a lock
  file: nothing is created (a refused start leaves the directory exactly as it was) and
  nothing goes stale (the kernel drops the lock when the process dies, even by ``kill -9``).
  The holder's pid comes from ``/proc/locks`` where there is one (Linux).
* ``check_owner`` refuses a file or directory that belongs to another user: running as the
  wrong user (often root) would leave files the right user cannot open later, and chmod-ing
  someone else's files is not ours to do.
* ``tighten`` narrows a mode that gives more than the server needs (the data directory 0700,
  the database and key files 0600) and logs what it changed. Files are created that way in
  the first place; this repairs copies restored by hand or a umask that let bits through.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import stat
from pathlib import Path

__all__ = [
    "DataDirError",
    "DirectoryInUseError",
    "DirectoryLock",
    "check_owner",
    "lock_directory",
    "tighten",
]

log = logging.getLogger("ptt_server")

_PROC_LOCKS = Path("/proc/locks")


class DataDirError(Exception):
    """A data-directory rule is broken; the message says how to fix it. Nothing was changed."""


class DirectoryInUseError(DataDirError):
    """Another process holds the directory's lock."""


class DirectoryLock:
    """An exclusive lock on one directory; ``release`` (idempotent) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        """Private: use ``lock_directory``."""
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """True until ``release``."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def lock_directory(path: Path) -> DirectoryLock:
    """Lock ``path`` (an existing directory) against every other ``lock_directory`` caller.

    flock locks belong to the open file description, so a second lock on the same
    directory fails even from the same process. Raises ``DirectoryInUseError`` naming the
    holder's pid when it can be found, ``DataDirError`` if the directory cannot be opened.
    """
    try:
        # O_RDONLY is enough for flock(2); the descriptor is not inherited by children.
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise DataDirError(f"cannot open data directory {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(os.fstat(fd))
        os.close(fd)
        who = f"pid {holder}" if holder else "process unknown"
        raise DirectoryInUseError(
            f"data directory {path} is in use by another ptt-server ({who}); stop that one "
            f"first, or give this one its own --data-dir"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise DataDirError(
            f"cannot lock data directory {path}: {exc.strerror}; put it on a local file system"
        ) from None
    return DirectoryLock(path, fd)


def _flock_holder(st: os.stat_result) -> int | None:
    """The pid holding a FLOCK on this inode, from /proc/locks, or None if unknown.

    Lines look like ``1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF``; the device is
    major:minor in hex, then the inode. Waiters are marked ``->`` and skipped.
    """
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = _PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == want:
            try:
                pid = int(fields[4])
            except ValueError:
                return None
            return pid if pid > 0 else None
    return None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_owner(path: Path) -> None:
    """Refuse ``path`` if it exists and belongs to another user than the one running us."""
    try:
        st = os.stat(path)  # through links: what matters is the file the server opens
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror}") from None
    me = os.geteuid()
    if st.st_uid != me:
        raise DataDirError(
            f"{path} belongs to {_user(st.st_uid)} but ptt-server runs as {_user(me)}: run it "
            f"as the owner, or give the whole data directory to this user (chown -R); "
            f"nothing was changed"
        )


def tighten(path: Path, mode: int) -> None:
    """Remove permission bits of ``path`` beyond ``mode``, logging the change.

    Only ever removes bits (a 0400 key stays 0400); follows links. A path that does not
    exist is left alone. Call ``check_owner`` first: chmod of another user's file is
    refused, or, for root, allowed when it should not be.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)
        log.warning(
            "narrowed file permissions",
            extra={
                "fields": {
                    "path": str(path),
                    "was": f"{current:04o}",
                    "now": f"{current & mode:04o}",
                }
            },
        )
