"""Bearer JWTs: real RS256/ES256 keys, a JWKS served over local HTTP (hits counted) and
from a file, every refusal a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.app import create_app
from api.auth import AuthConfigError
from api.security import check_bind_safety
from rag.settings import Settings
from tests.api.auth.conftest import alice_the_ingester, bearer, call

ISS = "https://sso.example.test/realms/rag"
AUD = "rag-api"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private: Any, kid: str) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        data = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
        data["alg"] = "RS256"
    else:
        data = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        data["alg"] = "ES256"
    return {**data, "kid": kid, "use": "sig"}


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300, **extra}


def token(private: Any, kid: str, alg: str = "RS256", **extra: Any) -> str:
    return jwt.encode(claims(**extra), private, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Jwks:
    """A JWKS endpoint in a thread: ``keys`` is what it serves, ``hits`` how often."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                jwks.hits += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def k1() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture
def provider(k1) -> Iterator[Jwks]:
    server = Jwks()
    server.keys = [jwk(k1, "k1")]
    yield server
    server.close()


def settings(**extra: Any) -> Settings:
    return Settings(auth_issuer=ISS, auth_audience=AUD, auth_jwks_refresh_s=300, **extra)


@pytest.fixture
def app(provider):
    return create_app(settings(auth_jwks_url=provider.url))


def test_a_valid_token_names_the_principal(app, provider, k1):
    assert provider.hits == 1  # read at start-up
    r = call(app, headers=bearer(token(k1, "k1", groups=["hr", "legal"], rag_role="ingester")))
    assert r.status_code == 200, r.text
    assert r.json() == alice_the_ingester("jwt")
    r = call(app, headers=bearer(token(k1, "k1", sub="bob", groups="a, b")))
    assert r.json()["name"] == "bob" and r.json()["role"] == "reader"  # the default role
    assert r.json()["groups"] == ["a", "b"]  # a comma string tolerated
    assert provider.hits == 1


def test_other_claim_names(provider, k1):
    app = create_app(
        settings(
            auth_jwks_url=provider.url,
            auth_principal_claim="email",
            auth_groups_claim="roles",
            auth_role_claim="rag",
            auth_default_role="ingester",
        )
    )
    r = call(app, headers=bearer(token(k1, "k1", email="a@example.test", roles=["x"])))
    assert r.json()["name"] == "a@example.test" and r.json()["groups"] == ["x"]
    assert r.json()["role"] == "ingester"


def refusals(k1: rsa.RSAPrivateKey) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    header = b64(json.dumps({"alg": "none", "kid": "k1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(rag_role="admin")).encode())
    pem = k1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    hs_sig = b64(hmac.new(pem, f"{hs_header}.{payload}".encode(), hashlib.sha256).digest())
    good = token(k1, "k1").split(".")
    other = token(k1, "k1", sub="mallory", rag_role="admin").split(".")
    no_exp = claims()
    del no_exp["exp"]
    return {
        "expired": (token(k1, "k1", exp=now - 3600), "token expired"),
        "not yet valid": (token(k1, "k1", nbf=now + 3600), "not valid yet"),
        "wrong audience": (token(k1, "k1", aud="someone-else"), "audience"),
        "wrong issuer": (token(k1, "k1", iss="https://evil.test"), "issuer"),
        "alg none": (f"{header}.{payload}.", "'none' is not accepted"),
        "hs256 with the public pem": (f"{hs_header}.{payload}.{hs_sig}", "'HS256'"),
        "tampered payload": (f"{good[0]}.{other[1]}.{good[2]}", "signature invalid"),
        "no exp": (jwt.encode(no_exp, k1, "RS256", headers={"kid": "k1"}), "'exp'"),
        "unknown role": (token(k1, "k1", rag_role="superuser"), "unknown role 'superuser'"),
        "no sub": (token(k1, "k1", sub=""), "'sub'"),
        "groups not strings": (token(k1, "k1", groups=[1, 2]), "not a list of strings"),
    }


CASES = [
    "expired",
    "not yet valid",
    "wrong audience",
    "wrong issuer",
    "alg none",
    "hs256 with the public pem",
    "tampered payload",
    "no exp",
    "unknown role",
    "no sub",
    "groups not strings",
]


@pytest.mark.parametrize("case", CASES)
def test_refused_tokens_are_401(app, k1, case):
    value, reason = refusals(k1)[case]
    r = call(app, headers=bearer(value))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert reason in r.json()["error"]["message"]
    openai = call(app, "/v1/models", headers=bearer(value))
    assert openai.status_code == 401 and reason in openai.json()["error"]["message"]


def test_leeway_allows_small_clock_skew(app, k1):
    r = call(app, headers=bearer(token(k1, "k1", exp=int(time.time()) - 5)))
    assert r.status_code == 200  # within auth_leeway_s (30 s)


def test_rotation_refreshes_once_then_refuses_unknown_kids(app, provider, k1):
    k2, k3 = rsa_key(), rsa_key()
    assert call(app, headers=bearer(token(k1, "k1"))).status_code == 200
    assert provider.hits == 1
    provider.keys = [jwk(k2, "k2")]  # the provider rotates
    assert call(app, headers=bearer(token(k2, "k2"))).status_code == 200
    assert provider.hits == 2  # exactly one refresh
    r = call(app, headers=bearer(token(k3, "k3")))
    assert r.status_code == 401 and "unknown key" in r.json()["error"]["message"]
    assert call(app, headers=bearer(token(k3, "k3"))).status_code == 401
    assert provider.hits == 2  # no refetch within the refresh interval
    assert call(app, headers=bearer(token(k2, "k2"))).status_code == 200
    assert call(app, headers=bearer(token(k1, "k1"))).status_code == 401  # rotated out


def test_an_unknown_kid_refreshes_once_then_fails(app, provider):
    stranger = rsa_key()
    assert call(app, headers=bearer(token(stranger, "zz"))).status_code == 401
    assert provider.hits == 2
    assert call(app, headers=bearer(token(stranger, "zz"))).status_code == 401
    assert provider.hits == 2


def test_a_provider_down_at_start_up_is_read_on_the_first_token(k1, caplog):
    server = Jwks()  # serves no keys yet
    server.close()
    app = create_app(settings(auth_jwks_url=server.url))  # unreachable: logged only
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    assert call(app, headers=bearer(token(k1, "k1"))).status_code == 401


def test_es256_from_a_jwks_file(tmp_path, k1):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(ec_key, "e1"), jwk(k1, "k1")]}))
    app = create_app(settings(auth_jwks_file=path))
    r = call(app, headers=bearer(token(ec_key, "e1", "ES256", rag_role="admin")))
    assert r.status_code == 200 and r.json()["role"] == "admin"
    # an RS256 token naming the EC key's kid: the key's own algorithm is the only one
    forged = jwt.encode(claims(), k1, algorithm="RS256", headers={"kid": "e1"})
    assert call(app, headers=bearer(forged)).status_code == 401
    # a file JWKS is re-read on an unknown kid too
    k4 = rsa_key()
    path.write_text(json.dumps({"keys": [jwk(k4, "k4")]}))
    assert call(app, headers=bearer(token(k4, "k4"))).status_code == 200


def test_keys_and_tokens_together(provider, k1):
    app = create_app(settings(auth_jwks_url=provider.url, api_keys=["plain-key"]))
    assert call(app, headers=bearer("plain-key")).json()["name"] == "key-1"
    assert call(app, headers=bearer(token(k1, "k1"))).json()["source"] == "jwt"
    r = call(app)
    assert r.status_code == 401 and "missing credentials" in r.json()["error"]["message"]


@pytest.mark.parametrize("missing", ["auth_issuer", "auth_audience"])
def test_a_jwks_needs_issuer_and_audience(tmp_path, missing):
    values = {"auth_issuer": ISS, "auth_audience": AUD, missing: None}
    with pytest.raises(AuthConfigError, match="RAG_AUTH_ISSUER and RAG_AUTH_AUDIENCE"):
        create_app(Settings(auth_jwks_file=tmp_path / "jwks.json", **values))


def test_a_bad_default_role_stops_start_up(tmp_path):
    with pytest.raises(AuthConfigError, match="unknown role 'boss'"):
        create_app(settings(auth_jwks_file=tmp_path / "j.json", auth_default_role="boss"))


def test_a_jwks_counts_as_authentication_for_the_bind():
    check_bind_safety(settings(api_host="0.0.0.0", auth_jwks_url="https://sso.test/jwks"))


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"auth_jwks_url": "file:///etc/jwks.json"}, "not an http"),
        ({"auth_jwks_url": "https://a.test/j", "auth_jwks_file": "j.json"}, "not both"),
    ],
)
def test_bad_jwks_settings_stop_start_up(extra, problem):
    with pytest.raises(AuthConfigError, match=problem):
        create_app(settings(**extra))


def test_malformed_tokens_and_a_single_key_without_kid(tmp_path, k1):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(k1, "k1")]}))
    app = create_app(settings(auth_jwks_file=path))
    r = call(app, headers=bearer("abc.def.ghi"))
    assert r.status_code == 401 and "malformed" in r.json()["error"]["message"]
    no_kid = jwt.encode(claims(), k1, algorithm="RS256")
    assert call(app, headers=bearer(no_kid)).status_code == 200  # the one key
    good = no_kid.split(".")
    odd_header = b64(json.dumps({"alg": "RS256", "kid": 7}).encode())
    odd_kid = f"{odd_header}.{good[1]}.{good[2]}"
    r = call(app, headers=bearer(odd_kid))
    assert r.status_code == 401 and "malformed" in r.json()["error"]["message"]
