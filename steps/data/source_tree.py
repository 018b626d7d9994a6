"""What a dataset source directory holds, and the one safe way to open its files.

The rule: a dataset is a tree of regular files and directories under its root. Any symbolic link
(wherever it points, inside the root or out), FIFO, socket or device is refused, naming the entry
and what it is, and files are opened without ever following a link: every directory on the way is
opened relative to its parent with O_NOFOLLOW, and the file itself is fstat-checked to be a regular
file, so an entry swapped for a link (or a FIFO) after listing is refused, not read. A link would
let a dataset pull in bytes from outside itself (`ln -s /etc/passwd x.csv`) with the reader's
rights, and a FIFO would hang the reader.

Hard links are accepted: they are regular files, and the kernel lets only someone who may already
read and write a file link it (fs.protected_hardlinks), so they grant nothing a copy would not.
Names starting with '.' are skipped (never read). Names with control characters (a newline would
forge lines in logs and listings) or that are not UTF-8 are refused.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

PARTITION_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang open()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SnapshotError(ValueError):
    """The dataset cannot be snapshotted as given."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _refusal(source_dir: Path, rel: str, mode: int, path: str) -> SnapshotError:
    what = _kind(mode)
    if stat.S_ISLNK(mode):
        try:
            what += f" (to {os.readlink(path)})"
        except OSError:
            pass
    return SnapshotError(
        f"dataset source {source_dir}: {rel} is {what}; a dataset may hold only regular files and "
        "directories, never links or special files (copy the data in instead)"
    )


def _check_name(source_dir: Path, rel: Path, name: str) -> None:
    if _CONTROL_RE.search(name):
        raise SnapshotError(
            f"dataset source {source_dir}: {str(rel)!r} has a control character (newline, tab, ...) in its name; rename it"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SnapshotError(
            f"dataset source {source_dir}: {str(rel).encode('utf-8', 'backslashreplace').decode()!r} "
            "has a name that is not valid UTF-8; rename it"
        ) from None


def partition_date(partition: str) -> date:
    match = PARTITION_RE.match(partition)
    if match is None:
        raise SnapshotError(f"{partition!r} is not a dt=YYYY-MM-DD partition")
    return date.fromisoformat(match.group(1))


def _raise_walk_error(err: OSError) -> None:
    raise SnapshotError(f"cannot read {err.filename}: {err.strerror}") from None


def list_dataset_files(source_dir: Path, as_of: date | None = None) -> tuple[list[Path], list[str]]:
    """Relative paths to include, and the dated partitions they come from.

    Files under `dt=YYYY-MM-DD/` are included only when that date is <= as_of, so a run
    for a past date sees the data as it was then. Other files are always included. Every
    entry of the tree is checked against the rule above, whether or not its date is included,
    so a dataset is not accepted today and refused when a later date includes a bad entry.
    """
    source_dir = Path(source_dir)
    if not source_dir.exists():
        raise SnapshotError(f"dataset source {source_dir} does not exist")
    if not source_dir.is_dir():  # the root itself may be a link: the catalog chose it
        raise SnapshotError(f"dataset source {source_dir} is not a directory")
    files: list[Path] = []
    partitions: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(source_dir, onerror=_raise_walk_error):
        rel_dir = Path(dirpath).relative_to(source_dir)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            _check_name(source_dir, rel_dir / name, name)
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not stat.S_ISDIR(mode):  # os.walk lists a link to a directory as a directory
                raise _refusal(source_dir, (rel_dir / name).as_posix(), mode, os.path.join(dirpath, name))
            kept.append(name)
        dirnames[:] = kept
        partition = next((p for p in rel_dir.parts if PARTITION_RE.match(p)), None)
        included = partition is None or as_of is None or partition_date(partition) <= as_of
        for name in filenames:
            if name.startswith("."):
                continue
            rel = rel_dir / name
            _check_name(source_dir, rel, name)
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                raise _refusal(source_dir, rel.as_posix(), mode, path)
            if included:
                files.append(rel)
                if partition is not None:
                    partitions.add(partition)
    if not files:
        when = f" up to {as_of.isoformat()}" if as_of else ""
        raise SnapshotError(f"dataset source {source_dir} has no files{when}")
    if as_of is not None and not partitions and _partition_names(source_dir):
        raise SnapshotError(
            f"dataset source {source_dir} has no dt= partitions up to {as_of.isoformat()}; "
            f"the earliest is {min(_partition_names(source_dir))}"
        )
    return sorted(files, key=lambda p: p.as_posix()), sorted(partitions)


def _partition_names(source_dir: Path) -> list[str]:
    return [
        entry.name for entry in os.scandir(source_dir)
        if entry.is_dir(follow_symlinks=False) and PARTITION_RE.match(entry.name)
    ]


@contextmanager
def open_source_file(source_dir: Path, rel: Path) -> Iterator[int]:
    """A read-only descriptor of the regular file `rel` under `source_dir`, reached without
    following any link below the root; anything else at that name is refused."""
    rel = Path(rel)
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts):
        raise SnapshotError(f"dataset source {source_dir}: {rel} is not a path inside the dataset")
    opened: list[int] = []
    try:
        opened.append(os.open(source_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        for part in rel.parts[:-1]:
            try:
                opened.append(os.open(part, _DIR_FLAGS, dir_fd=opened[-1]))
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SnapshotError(
                        f"dataset source {source_dir}: {rel}: {part} is no longer a directory (a link or a file "
                        "took its place after listing); refusing to follow it"
                    ) from None
                raise
        try:
            fd = os.open(rel.name, _READ_FLAGS, dir_fd=opened[-1])
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENXIO):  # ELOOP: a link; ENXIO: a socket
                mode = stat.S_IFLNK if err.errno == errno.ELOOP else stat.S_IFSOCK
                raise _refusal(source_dir, rel.as_posix(), mode, str(source_dir / rel)) from None
            raise
        opened.append(fd)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refusal(source_dir, rel.as_posix(), mode, str(source_dir / rel))
        yield fd
    finally:
        for fd in reversed(opened):
            os.close(fd)


def fd_path(fd: int) -> Path:
    """A path that reopens exactly the file behind `fd` (the inode checked, whatever its name
    points to now), for APIs that take a path."""
    return Path(f"/dev/fd/{fd}")
