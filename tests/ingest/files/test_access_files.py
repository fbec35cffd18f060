""".rag-access.toml resolution (``ingest.files.access``): inheritance, nearest wins per
key, the job's fields over the files (an ingester's the other way round), malformed files
fail every file below them, and the access file is never ingested."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.files.access import (
    ACCESS_FILE,
    AccessFileError,
    AccessResolver,
    JobAccess,
    Resolved,
)
from ingest.files.walk import iter_files
from rag.store.payloads import DocumentRecord


def tree(root: Path) -> Path:
    """root/{a.txt, hr/{b.txt, payroll/{c.txt}}}"""
    (root / "hr" / "payroll").mkdir(parents=True)
    for path in (root / "a.txt", root / "hr" / "b.txt", root / "hr" / "payroll" / "c.txt"):
        path.write_text("text")
    return root


def write_access(folder: Path, text: str) -> Path:
    path = folder / ACCESS_FILE
    path.write_text(text)
    return path


def test_a_subtree_inherits_and_the_nearest_file_wins_per_key(tmp_path):
    root = tree(tmp_path)
    write_access(root / "hr", 'collection = "hr"\ngroups = ["hr"]\n')
    write_access(root / "hr" / "payroll", 'groups = ["payroll"]\nusers = ["alice"]\n')
    resolver = AccessResolver()
    assert resolver.resolve(root / "a.txt") == Resolved()  # nothing above it says anything
    assert resolver.resolve(root / "hr" / "b.txt") == Resolved("hr", frozenset({"hr"}), None)
    # payroll's groups win; its collection is still hr's (nearest file *setting* the key)
    assert resolver.resolve(root / "hr" / "payroll" / "c.txt") == Resolved(
        "hr", frozenset({"payroll"}), frozenset({"alice"})
    )


def test_folders_are_read_once_per_job(tmp_path):
    root = tree(tmp_path)
    access = write_access(root / "hr", 'groups = ["hr"]\n')
    resolver = AccessResolver()
    assert resolver.resolve(root / "hr" / "b.txt").groups == {"hr"}
    access.write_text('groups = ["other"]\n')  # a change during the job is not seen
    assert resolver.resolve(root / "hr" / "payroll" / "c.txt").groups == {"hr"}
    assert AccessResolver().resolve(root / "hr" / "b.txt").groups == {"other"}  # next job


def test_the_jobs_fields_win_over_files_only_for_the_keys_given(tmp_path):
    root = tree(tmp_path)
    write_access(root / "hr", 'collection = "hr"\ngroups = ["hr"]\nusers = ["bob"]\n')
    job = JobAccess(groups=("execs",), owner="cli")
    assert AccessResolver(job).resolve(root / "hr" / "b.txt") == Resolved(
        "hr", frozenset({"execs"}), frozenset({"bob"})
    )


def test_for_an_ingester_the_files_win_and_every_grant_is_checked(tmp_path):
    root = tree(tmp_path)
    write_access(root / "hr", 'groups = ["hr"]\n')
    mine = JobAccess(groups=("hr",), owner="ivy", owner_groups=frozenset({"hr", "ops"}))
    assert AccessResolver(mine).resolve(root / "hr" / "b.txt").groups == {"hr"}
    other = JobAccess(groups=("ops",), owner="ivy", owner_groups=frozenset({"ops"}))
    resolver = AccessResolver(other)
    assert resolver.resolve(root / "a.txt").groups == {"ops"}  # no file: its own fields
    with pytest.raises(AccessFileError, match=r"may not grant group 'hr'.*\.rag-access\.toml"):
        resolver.resolve(root / "hr" / "b.txt")  # the file's group, not one of ivy's
    write_access(root / "hr" / "payroll", 'users = ["alice"]\n')
    mine_too = JobAccess(owner="ivy", owner_groups=frozenset({"hr"}))
    with pytest.raises(AccessFileError, match="may not grant user 'alice'"):
        AccessResolver(mine_too).resolve(root / "hr" / "payroll" / "c.txt")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("groups = [", "not valid TOML"),
        ('group = ["hr"]\n', "unknown key 'group'"),
        ('groups = "hr"\n', "groups must be a list of strings"),
        ("users = [1]\n", "users must be a list of strings"),
        ("collection = 3\n", "collection must be a string"),
        ('groups = ["h r"]\n', "invalid group name 'h r'"),
        ('collection = ""\n', "invalid collection name"),
    ],
)
def test_a_malformed_file_fails_every_file_below_it(tmp_path, text, reason):
    root = tree(tmp_path)
    access = write_access(root / "hr", text)
    write_access(root / "hr" / "payroll", 'groups = ["payroll"]\n')  # a fine one below
    resolver = AccessResolver(JobAccess(groups=("given",)))  # the job's fields do not help
    for path in (root / "hr" / "b.txt", root / "hr" / "payroll" / "c.txt"):
        with pytest.raises(AccessFileError) as caught:
            resolver.resolve(path)
        assert str(access) in str(caught.value) and reason in str(caught.value)
        assert "\n" not in str(caught.value)
    assert resolver.resolve(root / "a.txt").groups == {"given"}  # outside its subtree


def test_the_access_file_is_never_walked(tmp_path):
    root = tree(tmp_path)
    access = write_access(root / "hr", 'groups = ["hr"]\n')
    walked = {p for p in iter_files(root) if isinstance(p, Path)}
    assert access not in walked and root / "hr" / "b.txt" in walked
    assert list(iter_files(access)) == []  # not even when named itself


def test_the_stamp_fills_what_is_not_decided_from_the_stored_document():
    stored = DocumentRecord("d", "h", "/x", collection="hr", acl=["group:hr", "user:bob"])
    legacy = DocumentRecord("d", "h", "/x")  # before access control: acl [] (admins only)
    assert Resolved().stamp(None, "main") == {"collection": "main", "acl": ["default"]}
    assert Resolved().stamp(legacy, "main") == {"collection": "default", "acl": []}
    assert Resolved().stamp(stored, "main") == {"collection": "hr", "acl": stored.acl}
    assert Resolved(groups=frozenset({"ops"})).stamp(stored, "main") == {
        "collection": "hr",
        "acl": ["group:ops", "user:bob"],
    }
    assert Resolved("x", frozenset(), frozenset()).stamp(stored, "main") == {
        "collection": "x",
        "acl": ["default"],
    }


def test_job_access_round_trips_and_an_old_payload_means_nothing_given():
    job = JobAccess("hr", ("hr", "execs"), ("alice",), "ivy", frozenset({"hr"}))
    assert JobAccess.from_json(job.to_json()) == job
    assert JobAccess.from_json(None) == JobAccess()
    assert JobAccess.from_json({"owner": "x"}) == JobAccess(owner="x")
