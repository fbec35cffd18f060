"""`python -m ingest` as an operator runs it: exit codes, --json, and the remote path."""

import json
import os
import shutil
import subprocess
import sys
import time

import httpx

from tests.conftest import DOCS, ROOT
from tests.helpers.servers import free_port


def run_cli(args, env_extra, timeout=300):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_json_summary_and_exit_codes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DOCS / "release-notes.txt", folder)
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    ok = run_cli([str(folder), "--json"], env)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert {"files_seen", "ingested", "unchanged", "failed", "parents", "passages",
            "seconds"} <= summary.keys()
    assert summary["ingested"] == 1 and summary["failed"] == []
    (folder / "broken.pdf").write_bytes(b"not a pdf at all")
    bad = run_cli([str(folder), "--json"], env)
    assert bad.returncode == 1
    out = json.loads(bad.stdout)
    assert out["unchanged"] == 1
    assert out["failed"][0]["path"].endswith("broken.pdf")


def test_second_process_is_told_to_use_the_api(tmp_path):
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_API_PORT": str(free_port())}
    api = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{env['RAG_API_PORT']}"
        for _ in range(240):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        folder = tmp_path / "in"
        folder.mkdir()
        shutil.copy(DOCS / "reactor-update.eml", folder)
        locked = run_cli([str(folder)], {"RAG_DATA_DIR": env["RAG_DATA_DIR"]})
        assert locked.returncode == 2 and "open in another process" in locked.stderr
        remote = run_cli([str(folder), "--json"], {"RAG_DATA_DIR": env["RAG_DATA_DIR"],
                                                   "RAG_API_URL": url})
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout)["ingested"] == 1
        assert httpx.get(f"{url}/v1/documents").json()["total"] == 1
    finally:
        api.terminate()
        api.wait(timeout=60)


def test_watch_worker_ingests_new_files_and_stops_gracefully(tmp_path):
    import signal

    folder = tmp_path / "inbox"
    folder.mkdir()
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "ingest", str(folder), "--watch",
                             "--interval", "0.5"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1)
        shutil.copy(DOCS / "release-notes.txt", folder)
        line = proc.stdout.readline()  # one JSON summary per pass that changed something
        assert json.loads(line)["ingested"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
