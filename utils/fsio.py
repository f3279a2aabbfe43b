"""Atomic file output: a file or folder appears under its final name only once it is complete.

Temporary names are hidden and carry the writing process's id (``.<name>.<pid>.<random>.part``), so that the
leftovers of a killed run can be told from those of a run still going and removed (:func:`remove_orphans`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.cli import TEMPORARY_NAME, UserError


def read_text(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file; other bytes or an unreadable file are a :class:`UserError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None


def make_folder(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) if needed; a path that is a file, a folder that cannot be
    created or written is a :class:`UserError` naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{path}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: the folder is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: Path, base: int) -> None:
    """Give a mkstemp/mkdtemp result the permissions of a normally created file or folder (they are private)."""
    os.chmod(path, base & ~_umask())


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it is renamed to ``path`` when the block ends without error."""
    path = Path(path)
    make_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _default_mode(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` when the block ends without error."""
    path = Path(path)
    make_folder(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        _default_mode(tmp, 0o777)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def staged_files(folder: str | os.PathLike, replaces: Iterable[str] = (), last: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder inside ``folder``; when the block ends without error, every file and folder written
    into it moves into ``folder``, else none does: all or nothing.

    Entries of the same name are replaced, and so are those named in ``replaces`` (an earlier run's outputs, so that
    the folder never mixes two runs). ``last``, the file that marks the outputs complete, is removed first and moved
    in last. The staging folders and other temporary files of killed runs are removed first (:func:`remove_orphans`).
    """
    folder = make_folder(folder)
    remove_orphans(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".staged.{os.getpid()}.", suffix=".part", dir=folder))
    try:
        yield tmp
        entries = sorted(tmp.iterdir(), key=lambda path: (path.name == last, path.name))
        for name in dict.fromkeys([*([last] if last else []), *replaces, *(path.name for path in entries)]):
            _remove(folder / name)
        for path in entries:
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


_ORPHAN = re.compile(TEMPORARY_NAME.pattern + r"(?:\.index|\.data-\d{5}-of-\d{5})?")  # and checkpoint parts


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files and folders that killed processes left in ``folder`` (hidden ``.part`` names of a
    process id no longer running, on this machine); returns their names."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = _ORPHAN.fullmatch(path.name)
        if match and int(match["pid"]) != os.getpid() and not _running(int(match["pid"])):
            _remove(path)
            removed.append(path.name)
    return removed
