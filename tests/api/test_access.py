"""Access control through the API: roles on every route, and nothing of another team's
folder in any answer (search, query and the prompt the LLM receives, chat completions, a
follow-up, parents, documents, jobs, uploads, the audit trail).

Principals are set by a test-only override of ``api.deps.get_principal`` (the header
``X-Test-Principal`` names one of ``PRINCIPALS``): authentication is another module's
business; what is tested here is what a principal may do once established."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import Request

from api.app import create_app
from api.deps import Services, get_principal
from ingest.erasure import source_of
from ingest.indexer import Indexer
from ingest.jobs.inprocess import JobManager
from rag.access import AccessList, Principal, Role
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.documents import document_id
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.helpers.jobs import finished_job
from tests.helpers.llm_settings import REAL_LLM
from tests.helpers.servers import free_port, serve

HR_SECRET = "AZURE-HERON-7731"
ENG_SECRET = "CRIMSON-OTTER-4420"
HR_FILE = "hr-vault-codes.txt"
ENG_FILE = "eng-launch-keys.txt"
HR_TEXT = (
    f"HR vault procedures\n\nThe hr vault code is {HR_SECRET}. "
    "Only the human resources team opens the payroll vault, on the first Monday of each "
    "month, and the vault code is changed every quarter.\n"
)
ENG_TEXT = (
    f"Engineering launch procedures\n\nThe eng launch key is {ENG_SECRET}. "
    "Only the engineering team may start a rocket launch, and the launch key is rotated "
    "after every launch.\n"
)

PRINCIPALS = {
    "hr": Principal("hana", Role.reader, frozenset({"hr"})),
    "eng": Principal("emil", Role.reader, frozenset({"eng"})),
    "ingester": Principal("ivan", Role.ingester, frozenset({"eng"})),
    "ingester2": Principal("iris", Role.ingester, frozenset({"eng"})),
    "admin": Principal("ada", Role.admin),
}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def as_(who: str) -> dict[str, str]:
    return {"X-Test-Principal": who}


def _test_principal(request: Request) -> Principal:
    return PRINCIPALS[request.headers.get("x-test-principal", "admin")]


@contextmanager
def app_for(settings, store, embedder, llm_url: str | None = None, jobs=None) -> Iterator[str]:
    """The real app over ``store``; ``llm.prompts``: every message list sent to the LLM."""
    llm_url = llm_url or f"http://127.0.0.1:{free_port()}/v1"
    llm = LLMClient(LLMConfig.from_settings(settings, base_url=llm_url, connect_timeout=2.0))
    prompts: list[str] = []
    payload, count = llm.chat_payload, llm.count_chat_tokens

    def recording_payload(messages, **kwargs):
        prompts.append(json.dumps(messages))
        return payload(messages, **kwargs)

    async def recording_count(messages):
        prompts.append(json.dumps(messages))
        return await count(messages)

    llm.chat_payload = recording_payload  # type: ignore[method-assign]
    llm.count_chat_tokens = recording_count  # type: ignore[method-assign]
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, jobs)
    app = create_app(settings, services=services)
    app.dependency_overrides[get_principal] = _test_principal
    app.state.prompts = prompts
    with serve(app) as url:
        app_for.prompts = prompts  # type: ignore[attr-defined]
        yield url


@pytest.fixture(scope="module")
def tenants(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("tenants")
    hr, eng = base / "hr", base / "eng"
    hr.mkdir()
    eng.mkdir()
    (hr / HR_FILE).write_text(HR_TEXT)
    (eng / ENG_FILE).write_text(ENG_TEXT)
    settings = Settings(
        data_dir=base / "data",
        ingest_roots=[base],
        target_fill_tokens=1500,
        default_max_tokens=48,
        llm_retries=0,
        **REAL_LLM,
    )
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    summary = Indexer(settings, embedder, store).run([hr, eng])
    assert summary.ingested == 2 and not summary.failed, summary
    ids = {
        "hr": document_id(source_of(hr / HR_FILE)),
        "eng": document_id(source_of(eng / ENG_FILE)),
    }
    store.documents.set_access(ids["hr"], AccessList.of("hr", ["hr"]))
    store.documents.set_access(ids["eng"], AccessList.of("eng", ["eng"]))
    yield {"settings": settings, "store": store, "ids": ids, "base": base}
    store.close()


@pytest.fixture(scope="module")
def api(tenants, embedder) -> Iterator[str]:
    with app_for(tenants["settings"], tenants["store"], embedder) as url:
        yield url


# --- roles on every route --------------------------------------------------------------------
#: (method, path, request kwargs, the least role allowed)
ROUTES = [
    ("POST", "/v1/search", {"json": {"query": "vault"}}, Role.reader),
    ("POST", "/v1/query", {"json": {"question": ""}}, Role.reader),  # 422: no LLM call
    ("POST", "/v1/chat/completions", {"json": {"model": "x", "messages": []}}, Role.reader),
    ("GET", "/v1/models", {}, Role.reader),
    ("GET", f"/v1/parents/{UNKNOWN}", {}, Role.reader),
    ("GET", "/v1/documents", {}, Role.reader),
    ("GET", f"/v1/documents/{UNKNOWN}", {}, Role.reader),
    ("GET", "/v1/file-types", {}, Role.reader),
    ("POST", "/v1/ingest", {"json": {"paths": ["/nowhere"]}}, Role.ingester),
    ("POST", "/v1/ingest", {"json": {"paths": ["/nowhere"], "prune": True}}, Role.admin),
    ("GET", "/v1/ingest", {}, Role.ingester),
    ("GET", f"/v1/ingest/{uuid.uuid4().hex}", {}, Role.ingester),
    (
        "POST",
        "/v1/documents",
        {"files": {"files": ("matrix.txt", b"matrix upload", "text/plain")}},
        Role.ingester,
    ),
    ("DELETE", f"/v1/documents/{UNKNOWN}", {}, Role.admin),
    ("GET", "/v1/audit", {}, Role.admin),
]
ROLE_OF = {Role.reader: "hr", Role.ingester: "ingester", Role.admin: "admin"}


@pytest.mark.parametrize("role", list(Role))
def test_every_route_answers_each_role_allowed_or_403_never_500(api, role):
    for method, path, kwargs, least in ROUTES:
        r = httpx.request(method, f"{api}{path}", headers=as_(ROLE_OF[role]), timeout=60, **kwargs)
        assert r.status_code < 500, (method, path, role, r.status_code, r.text)
        if role.rank >= least.rank:
            assert r.status_code != 403, (method, path, role, r.text)
        else:
            assert r.status_code == 403, (method, path, role, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden"
    # public as before
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{api}{path}", headers=as_(ROLE_OF[role])).status_code == 200


# --- nothing of the other folder -------------------------------------------------------------
#: what must never reach a principal of the other team: the secret, the file name, the title
OTHER = {
    "hr": (ENG_SECRET, ENG_FILE, "Engineering launch procedures"),
    "eng": (HR_SECRET, HR_FILE, "HR vault procedures"),
}


def assert_clean(text: str, who: str) -> None:
    if who == "admin":
        return
    for forbidden in OTHER[who]:
        assert forbidden not in text, (forbidden, text[:500])


def _parents_of(api: str, doc: str) -> list[str]:
    hits = httpx.post(
        f"{api}/v1/search",
        json={"query": "vault code launch key", "top_k": 20, "filters": {"document_ids": [doc]}},
        headers=as_("admin"),
    ).json()["results"]
    return [h["parent_id"] for h in hits]


@pytest.mark.parametrize("who", ["hr", "eng", "admin"])
def test_search_documents_and_parents_show_only_what_a_principal_may_read(api, tenants, who):
    ids = tenants["ids"]
    own = {"hr": {ids["hr"]}, "eng": {ids["eng"]}, "admin": {ids["hr"], ids["eng"]}}[who]
    for query in ("What is the hr vault code?", "What is the eng launch key?"):
        r = httpx.post(
            f"{api}/v1/search",
            json={
                "query": query,
                "top_k": 10,
                "include": ["snippet", "passage_text", "parent_text"],
            },
            headers=as_(who),
        )
        assert r.status_code == 200
        assert {h["document_id"] for h in r.json()["results"]} <= own
        assert_clean(r.text, who)
    listing = httpx.get(f"{api}/v1/documents", headers=as_(who))
    assert {d["document_id"] for d in listing.json()["documents"]} == own
    assert_clean(listing.text, who)
    for doc in ids.values():
        r = httpx.get(f"{api}/v1/documents/{doc}", headers=as_(who))
        parents = _parents_of(api, doc)
        assert parents
        if doc in own:
            assert r.status_code == 200
            assert httpx.get(f"{api}/v1/parents/{parents[0]}", headers=as_(who)).status_code == 200
            continue
        # a foreign document answers exactly like one that does not exist
        unknown = httpx.get(f"{api}/v1/documents/{UNKNOWN}", headers=as_(who))
        assert r.status_code == unknown.status_code == 404
        assert r.json() == {"error": {"code": "not_found", "message": f"no document with id {doc}"}}
        assert unknown.json()["error"]["message"] == f"no document with id {UNKNOWN}"
        for parent in parents:
            p = httpx.get(f"{api}/v1/parents/{parent}", headers=as_(who))
            miss = httpx.get(f"{api}/v1/parents/{UNKNOWN}", headers=as_(who))
            assert p.status_code == miss.status_code == 404
            assert p.json()["error"] == {
                "code": "not_found",
                "message": f"no parent with id {parent}",
            }
            assert_clean(p.text, who)
        # the metrics name routes, never documents
        metrics = httpx.get(f"{api}/metrics").text
        assert doc not in metrics and parents[0] not in metrics


def test_collections_restrict_search_and_listings(api, tenants):
    ids = tenants["ids"]

    def found(who, filters):
        r = httpx.post(
            f"{api}/v1/search",
            json={"query": "vault code launch key", "top_k": 10, "filters": filters},
            headers=as_(who),
        )
        assert r.status_code == 200, r.text
        return {h["document_id"] for h in r.json()["results"]}

    assert found("admin", {"collection": "hr"}) == {ids["hr"]}
    assert found("admin", {"collections": ["eng"]}) == {ids["eng"]}
    assert found("admin", {"collections": ["hr", "eng"]}) == set(ids.values())
    assert found("hr", {"collection": "eng"}) == set()  # a collection widens nothing
    assert found("hr", {"collection": "hr"}) == {ids["hr"]}

    def listed(who, *collections):
        params = [("collection", c) for c in collections]
        r = httpx.get(f"{api}/v1/documents", params=params, headers=as_(who))
        return {d["document_id"] for d in r.json()["documents"]}

    assert listed("admin", "hr") == {ids["hr"]}
    assert listed("admin") == set(ids.values())
    assert listed("eng", "hr") == set()


def test_the_audit_trail_records_reads_and_hashes_questions(api, tenants):
    question = f"audit probe {uuid.uuid4().hex}"
    r = httpx.post(
        f"{api}/v1/search",
        json={"query": question, "filters": {"collection": "hr"}},
        headers=as_("hr"),
    )
    assert r.status_code == 200
    httpx.get(f"{api}/v1/documents/{tenants['ids']['eng']}", headers=as_("hr"))
    assert httpx.get(f"{api}/v1/audit", headers=as_("hr")).status_code == 403
    page = httpx.get(
        f"{api}/v1/audit", params={"principal": "hana", "limit": 2}, headers=as_("admin")
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] >= 2 and len(body["entries"]) == 2
    get, search = body["entries"]  # newest first
    assert get["event"] == "document.get" and get["documents"] == []  # nothing returned
    assert get["route"] == "GET /v1/documents/{document_id}" and get["role"] == "reader"
    assert search["event"] == "search" and search["principal"] == "hana"
    assert search["collections"] == ["hr"] and search["request_id"]
    assert search["documents"] == [h["document_id"] for h in r.json()["results"]]
    assert question not in page.text  # RAG_AUDIT_QUESTIONS is off: a hash
    import hashlib

    assert search["question_sha256"] == hashlib.sha256(question.encode()).hexdigest()
    since = httpx.get(
        f"{api}/v1/audit",
        params={"principal": "hana", "since": search["ts"], "until": get["ts"]},
        headers=as_("admin"),
    ).json()
    assert [e["event"] for e in since["entries"]] == ["search"]
    assert (
        httpx.get(f"{api}/v1/audit", params={"since": "soon"}, headers=as_("admin")).status_code
        == 422
    )
    others = httpx.get(f"{api}/v1/audit", params={"principal": "nobody"}, headers=as_("admin"))
    assert others.json() == {"entries": [], "total": 0, "limit": 100, "offset": 0}


# --- jobs, uploads, deletion ------------------------------------------------------------------
@pytest.fixture
def writable(settings_factory, embedder, tmp_path):
    settings = settings_factory(ingest_roots=[tmp_path])
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    jobs = JobManager(
        Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots),
        tmp_path / "jobs",
        inbox=settings.inbox,
    )
    with app_for(settings, store, embedder, jobs=jobs) as url:
        yield url, tmp_path, store, settings
    store.close()


def wait_job(url, job_id, who="admin"):
    return finished_job(url, job_id, as_(who))


def test_an_ingester_sees_its_own_jobs_only_and_a_deletion_is_audited(writable):
    url, tmp, store, settings = writable
    folder = tmp / "team"
    folder.mkdir()
    (folder / "plan.txt").write_text("The quarterly plan names the Ostrava depot.")
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(folder)]}, headers=as_("ingester"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["owner"] == "ivan"
    assert wait_job(url, job["job_id"], "ingester")["status"] == "done"
    own = httpx.get(f"{url}/v1/ingest", headers=as_("ingester")).json()["jobs"]
    assert [j["job_id"] for j in own] == [job["job_id"]]
    # another ingester: the job does not exist for it, exactly like an unknown id
    assert httpx.get(f"{url}/v1/ingest", headers=as_("ingester2")).json()["jobs"] == []
    foreign = httpx.get(f"{url}/v1/ingest/{job['job_id']}", headers=as_("ingester2"))
    unknown_id = uuid.uuid4().hex
    unknown = httpx.get(f"{url}/v1/ingest/{unknown_id}", headers=as_("ingester2"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["message"] == f"no ingest job {job['job_id']}"
    assert unknown.json()["error"]["message"] == f"no ingest job {unknown_id}"
    assert httpx.get(f"{url}/v1/ingest/{job['job_id']}", headers=as_("admin")).status_code == 200
    assert httpx.get(f"{url}/v1/ingest", headers=as_("hr")).status_code == 403
    audit = httpx.get(f"{url}/v1/audit", params={"principal": "ivan"}, headers=as_("admin"))
    assert audit.json()["entries"][0]["event"] == "ingest"
    assert audit.json()["entries"][0]["after"]["job"] == job["job_id"]

    # deletion (admin): points, parents, record and the cached parent text go
    doc = document_id(source_of(folder / "plan.txt"))
    hits = httpx.post(f"{url}/v1/search", json={"query": "Ostrava depot"}).json()["results"]
    parent = next(h["parent_id"] for h in hits if h["document_id"] == doc)
    assert httpx.get(f"{url}/v1/parents/{parent}").status_code == 200  # now cached
    assert any(v.document_id == doc for v in store.search._parent_cache.values())
    assert httpx.delete(f"{url}/v1/documents/{doc}", headers=as_("ingester")).status_code == 403
    assert httpx.delete(f"{url}/v1/documents/{doc}", headers=as_("admin")).status_code == 200
    assert not any(v.document_id == doc for v in store.search._parent_cache.values())
    assert httpx.get(f"{url}/v1/parents/{parent}").status_code == 404
    line = httpx.get(f"{url}/v1/audit", params={"principal": "ada"}, headers=as_("admin")).json()
    deleted = next(e for e in line["entries"] if e["event"] == "document.delete")
    assert deleted["documents"] == [doc]
    assert deleted["before"]["title"] and deleted["before"]["collection"] == "default"
    assert deleted["after"]["deleted"] is True
    assert "cached parent text" in deleted["after"]["removed"]


def test_an_upload_never_tells_whether_someone_else_holds_the_name(writable):
    url, tmp, store, settings = writable

    def upload(who, content):
        r = httpx.post(
            f"{url}/v1/documents",
            files={"files": ("notes.txt", content, "text/plain")},
            headers=as_(who),
            timeout=60,
        )
        assert r.status_code == 202, r.text
        return r.json()["files"][0]

    admins = upload("admin", b"The admin's notes about the Brno office.")
    assert admins["outcome"] == "new" and admins["path"] == "notes.txt"
    # another principal's file of the same name: not "renamed" (that would say it exists)
    first = upload("ingester", b"Ivan's notes about the Plzen office.")
    assert first == {"filename": "notes.txt", "path": "users/ivan/notes.txt", "outcome": "new"}
    other = upload("ingester2", b"Iris's notes about the Olomouc office.")
    assert other["outcome"] == "new" and other["path"] == "users/iris/notes.txt"
    # within one's own uploads, collisions are reported as before
    again = upload("ingester", b"Ivan's second notes.")
    assert again["outcome"] == "renamed" and again["path"] == "users/ivan/notes-2.txt"
    assert (settings.inbox / "notes.txt").read_bytes().startswith(b"The admin's")
    r = httpx.post(
        f"{url}/v1/documents",
        files={"files": ("n.txt", b"x", "text/plain")},
        headers=as_("hr"),
    )
    assert r.status_code == 403


# --- the answer path, with the real LLM -------------------------------------------------------
def test_answers_and_prompts_hold_nothing_of_the_other_folder(tenants, embedder, vllm):
    ids = tenants["ids"]
    with app_for(tenants["settings"], tenants["store"], embedder, llm_url=vllm) as url:
        prompts = app_for.prompts  # type: ignore[attr-defined]
        for who, question in (
            ("hr", "What is the eng launch key and the hr vault code?"),
            ("eng", "What is the hr vault code and the eng launch key?"),
            ("admin", "What is the hr vault code and the eng launch key?"),
        ):
            prompts.clear()
            r = httpx.post(
                f"{url}/v1/query", json={"question": question}, headers=as_(who), timeout=300
            )
            assert r.status_code == 200, r.text
            cited = {s["document_id"] for s in r.json()["sources"]}
            sent = "\n".join(prompts)
            assert prompts, "the LLM was called"
            if who == "admin":  # both folders are within reach (search shows both: above)
                assert cited and cited <= set(ids.values())
                assert HR_SECRET in sent or ENG_SECRET in sent
            else:
                assert cited == {ids[who]}
                assert_clean(r.text + json.dumps(dict(r.headers)), who)
                assert_clean(sent, who)

        # a follow-up whose history names the other team's document
        prompts.clear()
        r = httpx.post(
            f"{url}/v1/query",
            json={
                "question": "And what does it say the key is?",
                "history": [
                    {"role": "user", "content": "Summarise the engineering launch file."},
                    {"role": "assistant", "content": "I can only see the vault procedures."},
                ],
            },
            headers=as_("hr"),
            timeout=300,
        )
        assert r.status_code == 200, r.text
        assert {s["document_id"] for s in r.json()["sources"]} <= {ids["hr"]}
        assert_clean(r.text + "\n".join(prompts), "hr")

        def chat_as(who: str, question: str, max_tokens: int, **extra) -> httpx.Response:
            body = {
                "model": tenants["settings"].rag_model_id,
                "messages": [{"role": "user", "content": question}],
                "max_tokens": max_tokens,
                **extra,
            }
            return httpx.post(
                f"{url}/v1/chat/completions", json=body, headers=as_(who), timeout=300
            )

        prompts.clear()
        chat = chat_as("hr", "What is the eng launch key?", 32)
        assert chat.status_code == 200, chat.text
        assert {s["document_id"] for s in chat.json()["rag"]["sources"]} <= {ids["hr"]}
        assert_clean(chat.text + json.dumps(dict(chat.headers)) + "\n".join(prompts), "hr")
        # the ``rag`` extension's collections narrow what an admin's chat searches
        narrowed = chat_as("admin", "What is the hr vault code?", 16, rag={"collections": ["eng"]})
        assert narrowed.status_code == 200, narrowed.text
        assert {s["document_id"] for s in narrowed.json()["rag"]["sources"]} <= {ids["eng"]}
        assert HR_SECRET not in narrowed.text
        audit = httpx.get(f"{url}/v1/audit", params={"principal": "hana"}, headers=as_("admin"))
        events = [e["event"] for e in audit.json()["entries"]]
        assert events[:3] == ["chat", "query", "query"]
        assert audit.json()["entries"][0]["documents"] in ([], [ids["hr"]])
