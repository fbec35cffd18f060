"""The search page in real headless Chromium against the real API (and real vLLM).

The page's Content-Security-Policy refuses eval: conditions Playwright polls are written as
functions ("() => ..."), which it runs without evaluating a string, and a violation the
page itself causes fails the test."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from api.app import create_app
from api.deps import Services
from ingest.indexer import Indexer
from ingest.parsing.formats import FILE_TYPES
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.store.qdrant_store import QdrantStore
from tests.api.conftest import api_for
from tests.conftest import DOCS, ROOT
from tests.helpers.servers import free_port, serve

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "test-output" / "screenshots"
XSS = (
    "Security note about the Quetzal gateway.\n\n<script>window.__xss = 1</script> "
    '<img src=x onerror="window.__xss = 2"> The Quetzal gateway must be restarted weekly.'
)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run scripts/setup_browser.sh")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # The page runs under its own CSP (see the module docstring for the wait conditions).
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def own_api(tmp_path_factory, embedder):
    """A writable store (XSS document, deletions) with the LLM pointed at a closed port."""
    from rag.settings import Settings

    base = tmp_path_factory.mktemp("page")
    docs = base / "docs"
    docs.mkdir()
    (docs / "xss-note.txt").write_text(XSS)
    shutil.copy(DOCS / "release-notes.txt", docs)
    settings = Settings(data_dir=base / "data", llm_tokenizer="server")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    Indexer(settings, embedder, store).run([docs])
    llm = LLMClient(
        LLMConfig(
            base_url=f"http://127.0.0.1:{free_port()}/v1", model="x", connect_timeout=1, retries=0
        )
    )
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, None)
    with serve(create_app(settings, services=services)) as url:
        yield url
    store.close()


def shot(page, name: str, show: str | None = None) -> None:
    """Screenshots at a desktop and a phone width; `show`: a selector scrolled into view."""
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        time.sleep(0.3)
        if show:
            page.locator(show).first.evaluate("n => n.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(OUT / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1440, "height": 900})


def open_search_link(page, api: str, query: str) -> None:
    """Opens a shared link to a search (``/?q=...&mode=search``) and waits for its results."""
    page.goto(f"{api}/?{urlencode({'q': query, 'mode': 'search'})}")
    page.wait_for_selector("#sources li")


def test_ask_streams_and_citation_opens_highlighted_passage(page, llm_api):
    page.goto(llm_api + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # focused on load
    page.fill("#q", "Where was the Zorblax reactor built?")
    page.press("#q", "Enter")
    lengths = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lengths.add(len(page.text_content("#turn-1 .answer-text") or ""))
        if (page.text_content("#status") or "").startswith("Answered"):
            break
        time.sleep(0.05)
    assert len({n for n in lengths if n > 0}) >= 2, "the answer did not stream in"
    assert "Oslo" in page.text_content("#turn-1 .answer-text")
    assert "mode=ask" in page.url and "Zorblax" in page.url  # shareable
    assert "of 8,192" in page.text_content("#turn-1 .gauge-text")
    cite = page.locator("#turn-1 .answer-text a.cite").first
    n = int(cite.text_content().lstrip("≈"))  # ≈n: attributed by overlap
    cite.click()
    cited = page.locator("#v-text mark.cited")
    cited.wait_for()
    assert cited.count() == 1 and cited.is_visible()
    # The strong highlight is the citation's quote, inside the faint matched passage.
    turn = page.evaluate("JSON.parse(sessionStorage.getItem('rag-thread')).turns[0]")
    quote = next(c for c in turn["citations"] if c["n"] == n)
    start = next(s for s in turn["sources"] if s["n"] == n)["start"]
    whole = page.text_content("#v-text")
    quoted = whole[quote["quote_start"] - start : quote["quote_end"] - start]
    assert cited.text_content() == quoted and "Oslo" in quoted
    assert len(quoted) < len(whole) / 2  # the sentence, not the whole e-mail
    passage = page.locator("#v-text mark.passage")
    assert passage.count() >= 1
    background = "m => getComputedStyle(m).backgroundColor"
    assert cited.evaluate(background) != passage.first.evaluate(background)
    shot(page, "ask", show="#v-text mark.cited")


def test_search_mode_filters_and_shared_url(page, llm_api):
    open_search_link(page, llm_api, "Normans Sicily")
    assert page.is_checked("input[value=search]")
    terms = page.locator("#sources .snippet mark.term").all_text_contents()
    assert terms and {t.lower() for t in terms} <= {"normans", "sicily"}, terms
    page.click("#sources li >> nth=0")
    page.locator("#v-text mark").first.wait_for()
    viewed = page.locator("#v-text mark.term").all_text_contents()  # in the viewer too
    assert viewed and {t.lower() for t in viewed} <= {"normans", "sicily"}, viewed
    shot(page, "search")
    page.click("#filters summary")
    page.check("#f-types input[value=txt]")
    page.fill("#q", "reactor")
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('results')"
    )
    tags = page.locator("#sources .tag").all_text_contents()
    assert tags and set(tags) <= {"txt"}
    assert "types=txt" in page.url


def test_slash_focuses_the_box(page, llm_api):
    page.goto(llm_api + "/")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"


def test_llm_down_banner_and_search_results(page, own_api):
    page.goto(own_api + "/")
    page.wait_for_selector("#banner:not([hidden])")
    page.fill("#q", "Kestrel session timeout")
    page.press("#q", "Enter")
    page.wait_for_selector("#sources li")
    assert "unavailable" in page.text_content("#banner")
    assert "release-notes" in page.text_content("#sources")
    shot(page, "llm-down")


def test_document_text_is_never_html(page, own_api):
    open_search_link(page, own_api, "Quetzal gateway")
    page.click("#sources li >> nth=0")
    page.wait_for_selector("#v-text mark")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#v-text script, #v-text img, #sources img").count() == 0
    assert "<script>window.__xss = 1</script>" in page.text_content("#v-text")
    marked = page.locator("#sources .snippet mark.term").all_text_contents()
    assert {t.lower() for t in marked} == {"quetzal", "gateway"}
    assert 'onerror="window.__xss = 2"' in page.text_content("#v-text")
    shot(page, "xss")


def test_documents_view_and_confirmed_delete(page, own_api):
    page.goto(own_api + "/")
    page.click("#tab-docs")
    page.wait_for_selector("#docs-table tbody tr td button")
    assert page.locator("#docs-table tbody tr").count() == 2
    page.once("dialog", lambda d: d.dismiss())  # cancelled: nothing deleted
    page.click("#docs-table tbody tr >> nth=0 >> button")
    time.sleep(0.5)
    assert page.locator("#docs-table tbody tr").count() == 2
    shot(page, "documents")
    page.once("dialog", lambda d: d.accept())
    page.click("#docs-table tbody tr >> nth=0 >> button")
    page.wait_for_function("() => document.querySelectorAll('#docs-table tbody tr').length === 1")


def test_stop_cancels_the_stream_on_the_server(page, ingested, embedder, fault_server):
    base, fs = fault_server
    fs.disconnected.clear()
    with api_for(ingested, embedder, f"{base}/drip/v1", model="fake") as url:
        page.goto(url + "/")
        page.fill("#q", "Where was the Zorblax reactor built?")
        page.press("#q", "Enter")
        page.wait_for_function(
            "() => document.querySelector('#turn-1 .answer-text').textContent.length > 10"
        )
        page.click("#stop")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('Stopped')"
        )
        assert fs.disconnected.wait(10), "generation was not cancelled on the server"
        assert page.is_hidden("#stop")


def test_api_errors_are_shown_verbatim(page, llm_api):
    page.goto(llm_api + "/")
    page.fill("#q", "x" * 10)
    page.evaluate("document.getElementById('q').value = ' '.repeat(3) + 'y'.repeat(8001)")
    page.press("#q", "Enter")
    page.wait_for_selector("#banner.error:not([hidden])")
    assert "invalid_request" in page.text_content("#banner")


def test_no_matching_documents_is_said_without_asking_the_model(page, own_api):
    """own_api's LLM is down: a question whose filters match nothing still gets its answer."""
    page.goto(own_api + "/?q=Kestrel+session+timeout&mode=ask&types=xlsx")
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#turn-1 .answer-text').textContent.length > 0"
    )
    assert page.text_content("#turn-1 .answer-text").startswith("No documents matched")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('not asked')"
    )
    shot(page, "no-match")


def _wait_answered(page, turn: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('#thread .turn').length === {turn} && "
        "/^(Answered|No documents)/.test(document.getElementById('status').textContent)",
        timeout=180_000,
    )


def test_conversation_follow_up_reload_and_new_conversation(page, llm_api):
    """Ask, follow up with a pronoun, see two turns each with its own sources; a reload keeps
    the thread (session storage) and "New conversation" clears it."""
    page.goto(llm_api + "/")
    page.fill("#q", "Where was the Zorblax reactor built?")
    page.press("#q", "Enter")
    _wait_answered(page, 1)
    assert page.is_visible("#fq") and page.evaluate("document.activeElement.id") == "fq"
    page.fill("#fq", "What does its cooling loop use?")
    page.press("#fq", "Enter")
    _wait_answered(page, 2)
    first = page.locator("#turn-1 .turn-sources li").all_text_contents()
    second = page.locator("#turn-2 .turn-sources li").all_text_contents()
    assert first and second  # each turn lists its own sources
    assert "reactor-update.eml" in second[0]  # the pronoun was resolved to the first topic
    assert page.locator("#turn-1 .turn-sources").get_attribute("open") is None  # folded
    assert page.is_visible("#turn-2 .turn-sources li >> nth=0")  # the newest turn's are open
    searched = page.text_content("#turn-2 .searched")
    assert page.is_visible("#turn-2 .searched") and "Zorblax" in searched, searched
    assert "history" in page.text_content("#turn-2 .gauge-text")
    assert (
        page.evaluate("document.querySelector('#turn-2 .g-hist').getBoundingClientRect().width") > 0
    )
    answers = page.locator("#thread .answer-text").all_text_contents()
    shot(page, "conversation")

    page.reload()
    page.wait_for_selector("#turn-2")
    assert page.locator("#thread .answer-text").all_text_contents() == answers
    assert page.locator("#turn-2 .turn-sources li").all_text_contents() == second
    assert page.evaluate("document.activeElement.id") == "fq"
    page.click("#turn-1 .turn-sources summary")  # an earlier turn's sources open in the viewer
    page.click("#turn-1 .turn-sources li >> nth=0")
    page.locator("#v-text mark").first.wait_for()
    assert page.text_content("#v-meta").startswith("Q1 · ")

    page.click("#new-conv")
    assert page.locator("#thread .turn").count() == 0 and page.is_hidden("#fq")
    assert page.evaluate("sessionStorage.getItem('rag-thread')") is None
    page.reload()
    page.wait_for_function("() => document.readyState === 'complete'")
    assert page.locator("#thread .turn").count() == 0


def test_key_is_asked_once_then_the_file_types_are_offered(page, ingested, embedder):
    """With keys configured, the file types and the documents both need one: the page asks
    once, then offers the file types the API reads (GET /v1/file-types) as filters."""
    key = "page-test-key"
    page.add_init_script(
        "window.__prompts = 0; const show = HTMLDialogElement.prototype.showModal;"
        "HTMLDialogElement.prototype.showModal = function () { window.__prompts++;"
        " return show.call(this); };"
    )
    llm = f"http://127.0.0.1:{free_port()}/v1"
    with api_for(ingested, embedder, llm, api_keys=[SecretStr(key)]) as url:
        page.goto(url + "/?q=Quillon+valves&mode=search&types=pdf")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", key)
        page.click("#key-dialog button[value=ok]")
        page.wait_for_selector("#sources li")  # the link's search ran with the key
        boxes = page.locator("#f-types input")
        assert boxes.evaluate_all("l => l.map((i) => i.value)") == list(FILE_TYPES)
        assert boxes.evaluate_all("l => l.filter((i) => i.checked).map((i) => i.value)") == ["pdf"]
        assert set(page.locator("#sources .tag").all_text_contents()) == {"pdf"}
        assert page.locator("#f-doc option").count() > 1
        assert page.evaluate("window.__prompts") == 1
        assert "unauthorized" not in (page.text_content("#banner") or "")


def test_documents_view_shows_the_queue_jobs(page, redis_server, tmp_path):
    """With RAG_BROKER_URL the Documents view lists recent jobs and their counts, failures
    with their reasons (the API here is the queue's consumer: embedded store)."""
    import httpx

    from tests.helpers.api_process import ApiProcess

    folder = tmp_path / "shared"
    folder.mkdir()
    for name in ("release-notes.txt", "Normans.md"):
        shutil.copy(DOCS / name, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    api = ApiProcess(
        {
            "RAG_DATA_DIR": str(tmp_path / "data"),
            "RAG_INGEST_ROOTS": str(folder),
            "RAG_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            "RAG_BROKER_URL": redis_server.url,
        },
        tmp_path / "api.log",
    ).start()
    try:
        job = httpx.post(f"{api.url}/v1/ingest", json={"paths": [str(folder)]}, timeout=30).json()
        page.goto(api.url + "/")
        page.click("#tab-docs")
        row = page.locator(f"#jobs-table tr[data-job='{job['job_id']}']")
        row.wait_for()
        page.wait_for_function(
            f"() => document.querySelector(\"#jobs-table tr[data-job='{job['job_id']}'] td:nth-child(2)\")"
            ".textContent === 'done'",
            timeout=120_000,
        )
        cells = row.locator("td").all_text_contents()
        assert cells[1:5] == ["done", "3", "2", "0"] and cells[5] == "0 / 0 / 0"
        row.locator("summary").click()
        assert "broken.pdf" in row.locator(".job-failures").text_content()
        page.wait_for_function(
            "() => document.querySelectorAll('#docs-table tbody tr').length === 2"
        )
        shot(page, "jobs")
    finally:
        api.stop()


def test_highlight_levels_and_query_terms(page, own_api):
    """The viewer's levels: overlapping and nested ranges become segments at the strongest
    level covering them; query terms are whole words, case-insensitive, stop words left out."""
    page.goto(own_api + "/")
    got = page.evaluate(
        """async () => {
          const h = await import("/static/highlight.js");
          const box = document.createElement("div");
          h.appendTerms(box, "Zorblax reactors: the zorblax <b>REACTOR</b>.",
            h.termPattern(h.queryTerms("What is the Zorblax (reactor)?")));
          return {
            segments: h.levelSegments(100, [{start: 0, end: 60, level: 1},
              {start: 9, end: 30, level: 2}, {start: 50, end: 80, level: 1},
              {start: 70, end: 120, level: 2}, {start: 40, end: 40, level: 2}]),
            terms: h.queryTerms("What is the Zorblax (reactor)? a.b c++"),
            marks: [...box.querySelectorAll("mark")].map((m) => m.textContent),
            html: box.children.length,
            dots: "axb a.b".match(h.termPattern(["a.b"])),
          };
        }"""
    )
    assert got["segments"] == [
        {"start": 0, "end": 9, "level": 1},
        {"start": 9, "end": 30, "level": 2},
        {"start": 30, "end": 70, "level": 1},
        {"start": 70, "end": 100, "level": 2},
    ]
    assert got["terms"] == ["zorblax", "reactor"]
    assert got["marks"] == ["Zorblax", "zorblax", "REACTOR"]  # "reactors" is another word
    assert got["html"] == 3  # the <b> stayed text
    assert got["dots"] == ["a.b"]  # metacharacters are literal


@pytest.fixture
def upload_api(tmp_path, embedder):
    """A writable store with in-process ingestion jobs (uploads land in its inbox)."""
    from ingest.jobs.inprocess import JobManager
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", llm_tokenizer="server")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(
        LLMConfig(
            base_url=f"http://127.0.0.1:{free_port()}/v1", model="x", connect_timeout=1, retries=0
        )
    )
    worker = Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots)
    jobs = JobManager(worker, settings.data_dir / "jobs", inbox=settings.inbox)
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, jobs)
    with serve(create_app(settings, services=services)) as url:
        yield url
    store.close()


def _upload_state(page, name: str) -> str:
    return page.text_content(f"#up-list li[data-name='{name}'] .up-state") or ""


def test_upload_shows_outcomes_and_the_in_process_job(page, upload_api):
    """Two files through the file input: each row says what the API did with it and, once
    the in-process job ended, that it was ingested; the job is listed, the documents too."""
    page.goto(upload_api + "/")
    page.click("#tab-docs")
    assert page.get_attribute("#up-files", "accept").split(",")[:2] == [".pdf", ".docx"]
    page.set_input_files("#up-files", [str(DOCS / "release-notes.txt"), str(DOCS / "Normans.md")])
    for name in ("release-notes.txt", "Normans.md"):
        page.wait_for_function(
            f"() => /ingested|not ingested/.test(document.querySelector(\"#up-list li[data-name='{name}']"
            ' .up-state")?.textContent)',
            timeout=120_000,
        )
        assert _upload_state(page, name) == "saved · ingested"
    page.wait_for_function("() => document.querySelectorAll('#docs-table tbody tr').length === 2")
    assert "release-notes.txt" in page.text_content("#docs-table")
    page.wait_for_selector("#jobs-section:not([hidden]) #jobs-table tbody tr")
    cells = page.locator("#jobs-table tbody tr >> nth=0 >> td").all_text_contents()
    assert cells[1:5] == ["done", "2", "2", "0"], cells

    # The same file again: the API says it is unchanged.
    page.set_input_files("#up-files", str(DOCS / "release-notes.txt"))
    page.wait_for_function(
        "() => document.querySelector(\"#up-list li[data-name='release-notes.txt'] .up-state.ok\")"
        "?.textContent.startsWith('unchanged')",
        timeout=60_000,
    )
    shot(page, "upload")


def test_dropped_unsupported_file_shows_the_refusal(page, upload_api):
    """A drop on the zone uploads what was dropped; a type the API does not read is refused
    with its message, and nothing is saved."""
    page.goto(upload_api + "/")
    page.click("#tab-docs")
    page.wait_for_selector("#up-types:not(:empty)")
    drop = page.evaluate_handle(
        """() => {
          const dt = new DataTransfer();
          dt.items.add(new File(["MZ not a document"], "tool.exe", {type: "application/x-msdownload"}));
          return dt;
        }"""
    )
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": drop})
    assert "over" in (page.get_attribute("#drop-zone", "class") or "")
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": drop})
    error = page.locator("#up-list .up-error")
    error.wait_for()
    assert "'.exe' is not accepted" in error.text_content()
    assert "unsupported_type" in error.text_content()
    assert _upload_state(page, "tool.exe") == "not saved"
    assert "over" not in (page.get_attribute("#drop-zone", "class") or "")
    assert page.locator("#jobs-table tbody tr").count() == 0
    shot(page, "upload-refused")
