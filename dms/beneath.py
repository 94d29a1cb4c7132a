"""Reach directories under the destination root without ever following a symbolic link.

A user who can write into the destination can swap a directory for a symlink while a
sync runs (`dst/sub` -> `/etc`). A path check followed by an open by path leaves a
window for that swap; opening every component with `openat(O_NOFOLLOW | O_DIRECTORY)`
from the root does not. `Beneath` keeps those directory descriptors and hands out
`/proc/self/fd/N/name` paths, so code that works on paths (the native copier and
verifier, `os.rename`) acts inside the very directory that was opened, and opens the
last component with O_NOFOLLOW itself. The receiver does the same in C++
(`dms/native/include/dms/confine.hpp`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from types import TracebackType

from dms.state import FailedPiece

__all__ = ["Beneath"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Beneath:
    """Directory descriptors under one root, opened component by component.

    The root itself is opened as configured (an administrator may point it through a
    symlink); nothing below it is followed. A component that is a symlink or not a
    directory raises OSError(ELOOP) naming the path. Use as a context manager: the
    descriptors close on exit.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._fds: dict[str, int] = {}

    def __enter__(self) -> Beneath:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    @property
    def open_count(self) -> int:
        """Directory descriptors held now (close() releases them; they reopen on demand)."""
        return len(self._fds)

    def dir_fd(self, reldir: str, create: bool = True) -> int:
        """The descriptor of root/reldir ("" is the root), creating missing directories."""
        reldir = reldir.strip("/")
        fd = self._fds.get(reldir)
        if fd is not None:
            return fd
        if not reldir:
            if create:
                os.makedirs(self.root, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            parent_rel, name = reldir.rpartition("/")[::2]
            if name in ("", ".", ".."):
                raise OSError(errno.EINVAL, f"{os.path.join(self.root, reldir)}: not a plain relative path")
            parent = self.dir_fd(parent_rel, create)
            fd = self._open_child(parent, name, reldir, create)
        self._fds[reldir] = fd
        return fd

    def dir_path(self, reldir: str, create: bool = True) -> str:
        """A path that names root/reldir as opened (through /proc/self/fd)."""
        return f"/proc/self/fd/{self.dir_fd(reldir, create)}"

    def path(self, relpath: str, create: bool = True) -> str:
        """A path for the entry `relpath`: its parent as opened, then its own name."""
        reldir, name = os.path.split(relpath.strip("/"))
        return os.path.join(self.dir_path(reldir, create), name)

    def readable(self, failed: FailedPiece) -> FailedPiece:
        """The same failure with its /proc/self/fd paths shown as the directories they name."""
        message = failed.message
        for reldir, fd in self._fds.items():
            message = message.replace(f"/proc/self/fd/{fd}", os.path.join(self.root, reldir).rstrip("/"))
        return dataclasses.replace(failed, message=message)

    def _open_child(self, parent: int, name: str, reldir: str, create: bool) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OSError(
                    errno.ELOOP,
                    f"{os.path.join(self.root, reldir)}: not a directory of the destination (a symbolic link or "
                    "a file); DMS does not write through it",
                ) from None
            raise
        with contextlib.suppress(FileExistsError):  # made meanwhile by another task
            os.mkdir(name, 0o777, dir_fd=parent)  # mkdirat never follows a symlink at `name`
        return self._open_child(parent, name, reldir, create=False)
