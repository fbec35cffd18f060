"""Named API keys: the CLI (a real subprocess), the file format, the app's principals."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.auth import KeysFileError
from api.auth import keys as keys_module
from rag.settings import Settings
from tests.api.auth.conftest import alice_the_ingester, bearer, call
from tests.conftest import ROOT


def cli(*args: str, keys_file: Path | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    if keys_file is not None:
        env["RAG_API_KEYS_FILE"] = str(keys_file)
    return subprocess.run(
        [sys.executable, "-m", "api", "keys", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_add_list_revoke_and_the_api(tmp_path):
    path = tmp_path / "keys.toml"
    out = cli("add", "alice", "--role", "ingester", "--groups", "hr,legal", keys_file=path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    key = lines[-1]
    assert key.startswith("rag_") and len(key) > 40 and key == key.strip()
    assert out.stdout.count(key) == 1  # shown once, alone on the last line
    text = path.read_text()
    assert key not in text and "sha256" in text and 'name = "alice"' in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cli("add", "bob", keys_file=path).returncode == 0

    listed = cli("list", keys_file=path)
    assert listed.returncode == 0
    assert "alice\tingester\thr,legal" in listed.stdout and "bob\treader\t-" in listed.stdout
    assert key not in listed.stdout and "sha256" not in listed.stdout

    dup = cli("add", "alice", keys_file=path)
    assert dup.returncode == 1 and dup.stdout == ""
    assert dup.stderr.strip().count("\n") == 0 and "already exists" in dup.stderr

    app = create_app(Settings(api_keys_file=path))
    r = call(app, headers=bearer(key))
    assert r.status_code == 200
    assert r.json() == alice_the_ingester("key")
    assert call(app, headers=bearer(key + "x")).status_code == 401

    revoked = cli("revoke", "alice", keys_file=path)
    assert revoked.returncode == 0
    again = cli("revoke", "alice", keys_file=path)
    assert again.returncode == 1 and "no key named 'alice'" in again.stderr
    restarted = create_app(Settings(api_keys_file=path))
    r = call(restarted, headers=bearer(key))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "alice" not in cli("list", keys_file=path).stdout


def served_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[Path, str, Any]:
    """A key file with one key added by the CLI, and an app (rechecking the file at every
    request) that lets the key in: the file, the key, the app."""
    monkeypatch.setattr(keys_module, "RECHECK_S", 0.0)
    path = tmp_path / "keys.toml"
    key = cli("add", name, keys_file=path).stdout.strip().splitlines()[-1]
    app = create_app(Settings(api_keys_file=path))
    assert call(app, headers=bearer(key)).status_code == 200
    return path, key, app


def test_a_running_api_sees_a_revocation(tmp_path, monkeypatch):
    path, key, app = served_key(tmp_path, monkeypatch, "carol")
    before = os.stat(path).st_mtime_ns
    assert cli("revoke", "carol", keys_file=path).returncode == 0
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))  # coarse clocks
    assert call(app, headers=bearer(key)).status_code == 401


def test_a_file_that_breaks_while_running_fails_closed(tmp_path, monkeypatch):
    path, key, app = served_key(tmp_path, monkeypatch, "dave")
    path.write_text(path.read_text().replace('role = "reader"', 'role = "root"'))
    os.utime(path, ns=(10**18, 10**18))
    assert call(app, headers=bearer(key)).status_code == 401


def test_cli_needs_the_file_setting():
    out = cli("list", keys_file=None)
    assert out.returncode == 2 and "RAG_API_KEYS_FILE is not set" in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_cli_refusals(tmp_path):
    plain = tmp_path / "plain-keys"
    plain.write_text("an-old-plain-key\n")
    out = cli("add", "erin", keys_file=plain)
    assert out.returncode == 2 and "old form" in out.stderr
    assert plain.read_text() == "an-old-plain-key\n"
    path = tmp_path / "keys.toml"
    bad_role = cli("add", "erin", "--role", "root", keys_file=path)
    assert bad_role.returncode == 1 and "unknown role 'root'" in bad_role.stderr
    assert not path.exists()


def test_a_hashed_file_gives_no_plain_client_key(tmp_path):
    path = tmp_path / "keys.toml"
    assert cli("add", "frank", keys_file=path).returncode == 0
    settings = Settings(api_keys_file=path)
    assert settings.all_api_keys() == [] and settings.client_key() is None


def test_old_form_keys_are_admins_with_one_warning(tmp_path, caplog):
    path = tmp_path / "plain-keys"
    path.write_text("# old form\nfirst-plain-key\n\nsecond-plain-key\n")
    with caplog.at_level(logging.WARNING, logger="api.auth.keys"):
        app = create_app(Settings(api_keys=["env-key"], api_keys_file=path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "migrate" in warnings[0].getMessage()
    seen = {}
    for key in ("env-key", "first-plain-key", "second-plain-key"):
        r = call(app, headers=bearer(key))
        assert r.status_code == 200
        seen[key] = (r.json()["name"], r.json()["role"])
    assert seen == {
        "env-key": ("key-1", "admin"),
        "first-plain-key": ("key-2", "admin"),
        "second-plain-key": ("key-3", "admin"),
    }
    assert call(app, headers=bearer("other")).status_code == 401
    assert call(app).json()["error"]["message"] == "missing or invalid API key"


GOOD_SHA = "a" * 64


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('key = "rag_abc"\n', "holds a plain key"),
        ("key=rag_abc\n", "plain key"),
        (f'[[keys]]\nname = "a"\nkey = "k"\nsha256 = "{GOOD_SHA}"\n', "holds a plain key"),
        (f'[[keys]]\nname = "a"\nrole = "root"\nsha256 = "{GOOD_SHA}"\n', "unknown role 'root'"),
        (
            f'[[keys]]\nname = "a"\nsha256 = "{GOOD_SHA}"\n[[keys]]\nname = "a"\n'
            f'sha256 = "{"b" * 64}"\n',
            "duplicate key name 'a'",
        ),
        ('[[keys]]\nname = "a"\nsha256 = "xyz"\n', "sha256 must be 64 hex digits"),
        (f'[[keys]]\nname = "a"\nsha256 = "{GOOD_SHA}"\ncolour = "red"\n', "unknown field"),
        (f'[[keys]]\nname = "a"\ngroups = "hr"\nsha256 = "{GOOD_SHA}"\n', "list of strings"),
        ('[[keys]]\nrole = "reader"\n', "`name` (a string) is required"),
    ],
)
def test_malformed_files_are_one_line(tmp_path, content, problem):
    path = tmp_path / "keys.toml"
    path.write_text(content)
    with pytest.raises(KeysFileError) as caught:
        create_app(Settings(api_keys_file=path))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and problem in message


def test_start_up_stops_with_the_one_line(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "a"\nrole = "boss"\nsha256 = "{GOOD_SHA}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "RAG_API_KEYS_FILE": str(path)},
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {path}: [[keys]] #1")
    assert "unknown role 'boss'" in out.stderr


def test_a_named_key_may_not_take_an_old_form_name(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "key-1"\nsha256 = "{GOOD_SHA}"\n')
    with pytest.raises(KeysFileError, match="taken by an old-form key"):
        create_app(Settings(api_keys=["env-key"], api_keys_file=path))


def test_a_missing_keys_file_stops_start_up(tmp_path):
    with pytest.raises(KeysFileError, match="does not exist"):
        create_app(Settings(api_keys_file=tmp_path / "nope.toml"))
