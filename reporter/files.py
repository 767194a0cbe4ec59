"""Files whose paths come from users, read and written so that a hostile or careless path cannot hurt the run.

Reading: regular files only (a FIFO or a device would block or never end), never more than a stated size, and
a symbolic-link loop said as such. Writing: into a temporary file of our own (created exclusively, never through
a symbolic link someone planted), then renamed over the target, so a reader never sees half a file and a
failed write (a full disk) leaves nothing behind. Locking: one writer per output directory.

Every problem is a FileProblem whose text names the path and what is wrong with it; callers turn it into their
own error class. Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]
_COPY_CHUNK = 1024 * 1024

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class FileProblem(Exception):
    """A path that cannot be used as asked: the message names it and says why."""

    def __init__(self, path: PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def kind_of(mode: int) -> str:
    """'a FIFO (named pipe)' for a stat mode that is not a regular file."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def os_reason(exc: OSError) -> str:
    """What an OSError means, in words a user acts on."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (or a chain of links too long to follow)"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device (its file system is full)"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


def regular_size(path: PathLike) -> int:
    """The size of the regular file at `path` (symbolic links followed); FileProblem for anything else."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileProblem(path, os_reason(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(path, f"not a regular file: {kind_of(st.st_mode)}")
    return st.st_size


def read_regular(path: PathLike, limit: Optional[int] = None, what: str = "file") -> bytes:
    """The bytes of a regular file, at most `limit` of them. Opened without blocking (a FIFO swapped in after the
    check is refused by the check on the open file, not waited on)."""
    regular_size(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(path, os_reason(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(path, f"not a regular file: {kind_of(st.st_mode)}")
        if limit is not None and st.st_size > limit:
            raise FileProblem(path, f"too large for a {what}: {st.st_size:,} bytes, at most {limit:,}")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, _COPY_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:  # it grew while we read
                raise FileProblem(path, f"too large for a {what}: more than {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(path, os_reason(exc)) from None
    finally:
        os.close(fd)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` through a new temporary file in the same directory (O_EXCL|O_NOFOLLOW, a random
    name), renamed over `path`: a symbolic link planted at `path` or at any temporary name is replaced, never
    followed. On any failure the temporary file is removed and FileProblem names `path`."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise FileProblem(target, f"cannot write: {os_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _umask_mode())
            fh.write(data)
            fh.flush()
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise FileProblem(target, f"cannot write: {os_reason(exc)}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def copy_atomic(source: PathLike, path: PathLike) -> None:
    """Copy the regular file `source` to `path` the way write_atomic writes (nothing left behind on failure)."""
    target = Path(path)
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below, with the temporary file
    except OSError as exc:
        raise FileProblem(source, f"cannot read: {os_reason(exc)}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        src.close()
        raise FileProblem(target, f"cannot write: {os_reason(exc)}") from None
    try:
        with src, os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _umask_mode())
            while True:
                chunk = src.read(_COPY_CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise FileProblem(target, f"cannot write: {os_reason(exc)}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class DirectoryLock:
    """An exclusive lock on a directory (flock on the directory itself: no lock file to leave behind or to be
    replaced by a symbolic link), held until release() or the process ends."""

    def __init__(self, directory: PathLike) -> None:
        self.directory = Path(directory)
        self._fd: Optional[int] = None

    def acquire(self) -> DirectoryLock:
        """FileProblem when another process holds it: the caller says who it might be."""
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise FileProblem(self.directory, os_reason(exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FileProblem(self.directory, "in use: another process is writing its results there") \
                    from None
            raise FileProblem(self.directory, f"cannot lock: {os_reason(exc)}") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
