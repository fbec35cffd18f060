"""The page's ES modules: each served as JavaScript (a module script needs it), and every
name one imports is exported by the module it names (there is no build step to say so)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import STATIC, create_app

IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([\w-]+\.js)";', re.M)
EXPORT = re.compile(r"^export (?:async )?(?:function\*?|const|let|class) ([\w$]+)", re.M)


@pytest.fixture
def client(settings_factory) -> TestClient:
    return TestClient(create_app(settings_factory()))


def test_the_page_loads_its_entry_module(client: TestClient) -> None:
    page = client.get("/").text
    assert '<script type="module" src="/static/app.js"></script>' in page


def test_modules_are_javascript_and_their_imports_resolve(client: TestClient) -> None:
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] in (
            "text/javascript",
            "application/javascript",
        ), name
        for names, target in IMPORT.findall(r.text):
            exported = set(EXPORT.findall((STATIC / target).read_text()))
            wanted = {n.strip() for n in names.split(",") if n.strip()}
            assert wanted <= exported, (name, target, wanted - exported)
            todo.append(target)
    assert seen == {p.name for p in STATIC.glob("*.js")}  # no module left unused
