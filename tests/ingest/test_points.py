"""What users see as a document's name: its path below the root it was ingested from."""

from ingest.points import name_under
from rag.documents import display_name
from rag.settings import RetrievalMode


def test_name_is_relative_to_the_deepest_root_holding_it():
    roots = ["/srv/data", "/srv/data/inbox", "/home/op/docs/report.pdf"]
    assert name_under("/srv/data/mail/update.eml", roots) == "mail/update.eml"
    assert name_under("/srv/data/inbox/a.pdf", roots) == "a.pdf"  # the inbox, not /srv/data
    assert name_under("/home/op/docs/report.pdf", roots) == "report.pdf"  # a root that is a file
    assert name_under("/elsewhere/x.txt", roots) == "x.txt"  # never the absolute path
    assert name_under("/srv/database/y.txt", ["/srv/data"]) == "y.txt"  # not a path prefix


def test_points_stored_before_names_show_the_file_name_only():
    assert display_name("", "/srv/data/mail/update.eml") == "update.eml"
    assert display_name("mail/update.eml", "/srv/data/mail/update.eml") == "mail/update.eml"


def test_ingested_documents_and_hits_carry_their_display_name(ingested, embedder):
    store, docs = ingested["store"], ingested["docs"]
    records = store.documents.list_documents()
    assert {r.name for r in records} >= {"reactor-update.eml", "valves.pdf", "Normans.md"}
    assert all(r.source.startswith(str(docs.resolve())) for r in records)  # kept for logs
    vector = embedder.embed_queries(["Where was the Zorblax reactor built?"])[0].tolist()
    hits = store.search.search(vector, None, limit=3, mode=RetrievalMode.dense)
    assert hits[0].display_name == "reactor-update.eml" == hits[0].name
