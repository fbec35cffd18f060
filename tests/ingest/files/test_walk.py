import os

from ingest.files.walk import WalkProblem, iter_files


def test_symlink_loop_and_broken_link_are_reported(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text("hello")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    os.symlink(tmp_path / "missing.txt", tmp_path / "a" / "dangling.txt")
    items = list(iter_files(tmp_path))
    files = [i for i in items if not isinstance(i, WalkProblem)]
    problems = {i.path.name: i.reason for i in items if isinstance(i, WalkProblem)}
    assert [f.name for f in files] == ["doc.txt"]
    assert problems["dangling.txt"] == "broken symbolic link"
    assert "loop" in problems["loop"]


def test_odd_names_and_hidden_files(tmp_path):
    odd = tmp_path / "ünïcode name; with 'quotes' & $x.txt"
    odd.write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    assert [p.name for p in iter_files(tmp_path)] == [odd.name]


def test_missing_root(tmp_path):
    [problem] = list(iter_files(tmp_path / "nope"))
    assert problem.reason == "no such file or folder"
