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

from dms.errors import ConfinementError
from dms.fs.names import shown
from dms.model import FailedPiece, SyncParams

__all__ = ["DIR_FLAGS", "Beneath", "NotEmpty", "destination_beneath", "make_way", "remove_tree", "rename_replacing"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Beneath:
    """Directory descriptors under one root, opened component by component.

    The root itself is opened as configured (an administrator may point it through a
    symlink); nothing below it is followed. A component that is a symlink or not a
    directory raises OSError(ELOOP) naming the path. Use as a context manager: the
    descriptors close on exit.
    """

    def __init__(self, root: str, anchor: str | None = None) -> None:
        self.root = root
        #: a configured root at or above `root`: root is then reached from it without following
        #: a symbolic link (and made below it where missing), so the tree cannot be outside it
        self.anchor = anchor
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
        if not reldir and self.anchor is not None:
            fd = _open_below(self.anchor, self.root, create)
        elif not reldir:
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
        return dataclasses.replace(failed, message=self.readable_text(failed.message))

    def readable_text(self, message: str) -> str:
        """`message` with the /proc/self/fd/N paths of this Beneath's directories spelled as the
        directories they name (longest descriptor numbers first: /proc/self/fd/1 is a prefix)."""
        for reldir, fd in sorted(self._fds.items(), key=lambda item: -item[1]):
            message = message.replace(f"/proc/self/fd/{fd}", os.path.join(self.root, reldir).rstrip("/"))
        return message

    def _open_child(self, parent: int, name: str, reldir: str, create: bool) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not create:
                raise OSError(
                    errno.ELOOP,
                    f"{shown(os.path.join(self.root, reldir))}: not a directory (a symbolic link or a file); DMS "
                    "does not go through it",
                ) from None
            # The source has a directory here (every caller that creates asks for a directory the
            # source has): what stands in its way is replaced, as rsync does. unlinkat removes the
            # symlink or file itself, never what a symlink points to.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent)
        with contextlib.suppress(FileExistsError):  # made meanwhile by another task
            os.mkdir(name, 0o777, dir_fd=parent)  # mkdirat never follows a symlink at `name`
        return self._open_child(parent, name, reldir, create=False)


def _open_below(anchor: str, path: str, create: bool) -> int:
    """A descriptor of `path`, reached from `anchor` (opened as configured) one component at a
    time with O_NOFOLLOW, and created where missing if `create`. A component that is a symbolic
    link or not a directory is refused (ELOOP): above the tree DMS syncs, nothing is replaced."""
    rel = os.path.relpath(path, anchor)
    parts = [] if rel == "." else rel.split("/")
    if ".." in parts:
        raise OSError(errno.EXDEV, f"{path} is not below {anchor}")
    fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    shown_at = os.path.join(anchor, *parts[: i + 1])
                    raise OSError(errno.ELOOP, f"{shown_at} is a symbolic link or not a directory: the destination "
                                  f"would not be inside the root {anchor}; refused") from None  # fmt: skip
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def destination_beneath(params: SyncParams) -> Beneath:
    """The Beneath of a request's destination on this node: anchored at the node's configured
    root that holds it (workers.yml `roots`), so it is confined by resolution, not by spelling;
    a node without roots (embedded mode, a plain worker) opens the destination as given.
    Raises ConfinementError for a destination outside the node's roots."""
    from dms.fs.roots import under_roots
    from dms.settings import current_node

    node = current_node()
    if node is None or not node.roots:
        return Beneath(params.destination)
    roots = [r.rstrip("/") or "/" for r in node.roots]
    under = [r for r in roots if under_roots(params.destination, [r])]
    if not under:
        raise ConfinementError(f"destination {shown(params.destination)} is outside the roots of node {node.name}")
    return Beneath(params.destination, anchor=max(under, key=len))


class NotEmpty(OSError):
    """A non-empty directory stands where a non-directory is to be published, and the request
    does not delete (rsync: "cannot delete non-empty directory", exit 23)."""


def remove_tree(parent: int, name: str) -> None:
    """Remove `name` below the directory descriptor `parent`, a directory with all it holds,
    through descriptors only: no symbolic link is followed, so nothing outside is touched even
    when a component is swapped meanwhile (an entry that changes type is retried once)."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        return
    try:
        with os.scandir(fd) as it:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in children:
            if is_dir:
                remove_tree(fd, child)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except IsADirectoryError:  # became a directory meanwhile
                    remove_tree(fd, child)
                except FileNotFoundError:
                    pass
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=parent)


def make_way(parent: int, name: str, delete: bool, shown_path: str) -> None:
    """Clear a directory at `name` (below `parent`) so a non-directory can be published there.

    An empty directory is removed in any case; a non-empty one only with `delete` (rsync's
    --delete implies --force); otherwise NotEmpty. Whatever else is there is left: rename
    replaces a file, symlink or special file atomically."""
    try:
        os.rmdir(name, dir_fd=parent)
        return
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or no directory: rename replaces it
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not delete:
        raise NotEmpty(errno.ENOTEMPTY, f"cannot delete non-empty directory {shown_path} to put a non-directory "
                       "there (rsync refuses too; --delete replaces it)")  # fmt: skip
    remove_tree(parent, name)


def rename_replacing(staged: str, final: str, delete: bool, shown_path: str) -> None:
    """rename(staged, final), where a directory at `final` is cleared first (make_way): the
    source's non-directory replaces it, as rsync does. `final` is a Beneath path (its directory
    as opened, /proc/self/fd/N), so the clearing happens in that very directory."""
    try:
        os.rename(staged, final)
        return
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise
    parent = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        make_way(parent, os.path.basename(final), delete, shown_path)
    finally:
        os.close(parent)
    os.rename(staged, final)
