"""`python -m ingest` as an operator runs it: exit codes, --json, and the remote path."""

import json
import os
import shutil
import subprocess
import sys
import time

import httpx

from tests.conftest import DOCS, ROOT


def run_cli(args, env_extra, timeout=300):
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args, env, stderr=subprocess.PIPE) -> subprocess.Popen:
    """`python -m ingest` left running with the whole environment ``env``, stdout piped (text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def test_json_summary_and_exit_codes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DOCS / "release-notes.txt", folder)
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    ok = run_cli([str(folder), "--json"], env)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert {
        "files_seen",
        "ingested",
        "unchanged",
        "failed",
        "parents",
        "passages",
        "seconds",
    } <= summary.keys()
    assert summary["ingested"] == 1 and summary["failed"] == []
    (folder / "broken.pdf").write_bytes(b"not a pdf at all")
    bad = run_cli([str(folder), "--json"], env)
    assert bad.returncode == 1
    out = json.loads(bad.stdout)
    assert out["unchanged"] == 1
    assert out["failed"][0]["path"].endswith("broken.pdf")


def test_a_missing_ocr_language_stops_the_cli_and_the_api_at_start(tmp_path):
    env = {"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_OCR_LANGUAGES": "eng+xyz"}
    out = run_cli([str(DOCS)], env)
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith("error: OCR language(s) xyz not installed for Tesseract")
    )
    api = subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert api.returncode == 2 and "xyz not installed" in api.stderr


def test_warnings_name_the_pages_left_out(tmp_path):
    from tests.helpers.pdf import write_pdf
    from tests.helpers.scans import blank_page, render_pages, save_tiff

    folder = tmp_path / "in"
    folder.mkdir()
    text = write_pdf(
        tmp_path / "memo.pdf", [["Site memo.", "", "The loading dock closes at 6 pm."]]
    )
    save_tiff([render_pages(text.read_bytes(), [1])[0], blank_page()], folder / "memo.tiff")
    blank_page().save(folder / "blank-scan.png")
    out = run_cli([str(folder)], {"RAG_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 1  # the blank scan has nothing to index: a failure line
    assert "blank-scan.png: no page could be indexed: page 1: blank page" in out.stdout
    # the TIFF is ingested; its blank second page is named
    assert "ingested 1" in out.stdout
    assert "WARNING " in out.stdout and "memo.tiff: page 2: blank page" in out.stdout


def test_second_process_is_told_to_use_the_api(tmp_path):
    from tests.helpers.api_process import ApiProcess

    folder = tmp_path / "in"
    folder.mkdir()
    data = str(tmp_path / "data")
    api = ApiProcess(
        {
            "RAG_DATA_DIR": data,
            "RAG_API_KEYS": "cli-key",
            "RAG_INGEST_ROOTS": str(folder),
            "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        },
        tmp_path / "api.log",
    )
    api.start()
    try:
        shutil.copy(DOCS / "reactor-update.eml", folder)
        locked = run_cli([str(folder)], {"RAG_DATA_DIR": data})
        assert locked.returncode == 2 and "open in another process" in locked.stderr
        # The CLI sends the operator's key: RAG_API_CLIENT_KEY, or the first of RAG_API_KEYS.
        remote = run_cli(
            [str(folder), "--json"],
            {"RAG_DATA_DIR": data, "RAG_API_URL": api.url, "RAG_API_CLIENT_KEY": "cli-key"},
        )
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout)["ingested"] == 1
        same = run_cli(
            [str(folder), "--json"],
            {"RAG_DATA_DIR": data, "RAG_API_URL": api.url, "RAG_API_KEYS": "cli-key"},
        )
        assert same.returncode == 0 and json.loads(same.stdout)["unchanged"] == 1
        listed = httpx.get(f"{api.url}/v1/documents", headers={"Authorization": "Bearer cli-key"})
        assert listed.json()["total"] == 1
        wrong = run_cli(
            [str(folder)],
            {"RAG_DATA_DIR": data, "RAG_API_URL": api.url, "RAG_API_CLIENT_KEY": "nope"},
        )
        assert wrong.returncode == 2
        assert wrong.stderr.strip().splitlines() == [
            f"error: the API at {api.url} refused the key (401): set RAG_API_CLIENT_KEY to "
            "one of its RAG_API_KEYS"
        ]
        outside = run_cli(
            [str(tmp_path)],
            {"RAG_DATA_DIR": data, "RAG_API_URL": api.url, "RAG_API_CLIENT_KEY": "cli-key"},
        )
        assert outside.returncode == 2 and "(403)" in outside.stderr
        assert "Traceback" not in outside.stderr
    finally:
        api.stop()


def test_the_api_dying_mid_job_ends_the_cli_with_one_line(tmp_path):
    from tests.helpers.api_process import ApiProcess
    from tests.helpers.docx import write_compressible_docx

    folder = tmp_path / "in"
    folder.mkdir()
    write_compressible_docx(folder / "slow.docx", 200_000)  # keeps the job busy
    data = str(tmp_path / "data")
    api = ApiProcess(
        {
            "RAG_DATA_DIR": data,
            "RAG_INGEST_ROOTS": str(folder),
            "RAG_PARSE_MAX_ARCHIVE_RATIO": "100000",
            "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        },
        tmp_path / "api.log",
    )
    api.start()
    env = {**os.environ, "RAG_DATA_DIR": data, "RAG_API_URL": api.url}
    cli = start_cli([str(folder)], env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(
            (tmp_path / "data" / "jobs").glob("*.json")
            if (tmp_path / "data" / "jobs").is_dir()
            else []
        ):
            time.sleep(0.2)
        time.sleep(1.0)
        api.kill9()
        _, err = cli.communicate(timeout=120)
    finally:
        api.stop()
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 2
    lines = [line for line in err.strip().splitlines() if not line.startswith("ingest job ")]
    assert len(lines) == 1 and lines[0].startswith(f"error: lost the API at {api.url}"), err
    assert "resumes when the API starts again" in lines[0] and "Traceback" not in err


def test_watch_ingests_new_files_and_stops_gracefully(tmp_path):
    import signal

    folder = tmp_path / "inbox"
    folder.mkdir()
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    proc = start_cli([str(folder), "--watch", "--interval", "0.5"], env, stderr=subprocess.DEVNULL)
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
