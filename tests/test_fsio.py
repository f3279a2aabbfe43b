"""Atomic and staged output, output folders, UTF-8 text inputs and the orphans of killed runs (utils/fsio.py)."""

import os
import stat

import pytest

from utils.cli import UserError
from utils.fsio import atomic_dir, atomic_file, make_folder, remove_orphans, staged_files


def test_atomic_file_appears_complete_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_file(target) as tmp:
        tmp.write_text("data")
        assert not target.exists()
    assert target.read_text() == "data"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(target.parent) == ["out.txt"]


def test_atomic_file_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "root"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["root"] and os.listdir(target) == ["a"]
    assert stat.S_IMODE(target.stat().st_mode) & 0o755 == 0o755


def test_orphans_of_killed_processes_are_removed_and_those_of_running_ones_kept(tmp_path):
    dead = 999_999_999  # above any pid_max
    names = {f".metrics.json.{dead}.k3j_h5g6.part": False, f".staged.{dead}.abcdefgh.part": True,
             f".model.ckpt-4.{dead}.part.index": False, f".model.ckpt-4.{dead}.part.data-00000-of-00001": False,
             f".staged.{os.getpid()}.abcdefgh.part": True, f".staged.{os.getppid()}.abcdefgh.part": True,
             f"model.ckpt-4.{dead}.part": False, ".hidden.part": False}
    for name, folder in names.items():
        (tmp_path / name).mkdir() if folder else (tmp_path / name).write_text("x")
    assert remove_orphans(tmp_path) == sorted(name for name in names if f".{dead}." in name and name[0] == ".")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".staged.{os.getpid()}.abcdefgh.part", f".staged.{os.getppid()}.abcdefgh.part", f"model.ckpt-4.{dead}.part",
         ".hidden.part"])


def test_output_folders_that_are_files_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"file: exists and is not a folder$"):
        make_folder(tmp_path / "file")
    for writer in (atomic_file, atomic_dir):
        with pytest.raises(UserError, match=r"file/sub: cannot create the folder \(Not a directory\)$"), \
                writer(tmp_path / "file" / "sub" / "out.txt"):
            pass
    with pytest.raises(UserError, match=r"file: exists and is not a folder$"), staged_files(tmp_path / "file"):
        pass
    assert make_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
