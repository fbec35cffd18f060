"""GET /v1/file-types: the types ingestion reads, behind the key like every /v1 route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ingest.parsing.formats import FILE_TYPES, SUPPORTED

KEY = "file-types-key"


@pytest.fixture
def client(settings_factory) -> TestClient:
    """The app without its lifespan: the route and the key check need no store or model."""
    return TestClient(create_app(settings_factory(api_keys=[KEY])))


def test_file_types_lists_what_ingestion_reads(client: TestClient) -> None:
    r = client.get("/v1/file-types", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    body = r.json()
    assert body["file_types"] == list(FILE_TYPES)
    assert body["file_types"][:3] == ["pdf", "docx", "pptx"] and "tiff" in body["file_types"]
    assert body["extensions"] == {suffix: kind for suffix, (kind, _) in SUPPORTED.items()}
    assert body["extensions"][".jpeg"] == "jpg" and "partition" not in r.text  # no partitioners


def test_file_types_needs_the_key(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.get("/v1/file-types", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


def test_file_types_is_documented_under_documents(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    operation = schema["paths"]["/v1/file-types"]["get"]
    assert operation["tags"] == ["documents"]
    assert schema["components"]["schemas"]["FileTypesResponse"]["required"] == [
        "file_types",
        "extensions",
    ]
