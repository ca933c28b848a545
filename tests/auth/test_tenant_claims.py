"""The caller's tenant, from a verified token: the configured claim when present, the default
tenant when absent (or a 401 when a tenant is required), and a 401 for anything in the claim
that is not a tenant name, in jwt and introspection modes alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.auth.backend import BearerAuthenticator
from service.auth.errors import AuthError
from service.settings import Settings
from tests.auth.idp import AUDIENCE, ISSUER, Clock, Idp, Key, bearer, mint
from tests.factories import AuthFactory, ClientFactory, json_of, tenant_app

pytestmark = pytest.mark.anyio

NOT_TENANT_NAMES: list[Any] = [
    42,
    True,
    ["acme"],
    {"name": "acme"},
    "",
    "-acme",
    ".acme",
    "acme corp",
    "acme/west",
    "acme\n",
    "ácme",
    "a" * 64,
]
TENANT_NAMES = ["acme", "Acme-West_2.eu", "0", "a" * 63]


class Issuer:
    """Tokens with given claims, for one mode: signed JWTs, or opaque tokens the in-process
    authorization server introspects."""

    def __init__(self, mode: str, keys: dict[str, Key], idp: Idp, clock: Clock) -> None:
        self.mode, self.key, self.idp, self.clock = mode, keys["rsa1"], idp, clock
        self.issued = 0

    def token(self, **claims: Any) -> str:
        if self.mode == "jwt":
            return mint(self.key, self.clock.now, **claims)
        self.issued += 1
        token = f"opaque-{self.issued:04d}-0123456789"
        answer = {
            "active": True,
            "sub": "alice",
            "scope": "models:read",
            "aud": AUDIENCE,
            "iss": ISSUER,
            "exp": int(self.clock.now) + 600,
            **claims,
        }
        self.idp.introspection[token] = {k: v for k, v in answer.items() if v is not None}
        return token

    async def auth(self, make_auth: AuthFactory, **overrides: Any) -> BearerAuthenticator:
        if self.mode == "jwt":
            return await make_auth(**overrides)
        return await make_auth(mode="introspection", jwks_url="", **overrides)


@pytest.fixture(params=["jwt", "introspection"])
def issuer(request: pytest.FixtureRequest, keys: dict[str, Key], idp: Idp, clock: Clock) -> Issuer:
    return Issuer(request.param, keys, idp, clock)


async def refusal(auth: BearerAuthenticator, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value


@pytest.mark.parametrize("tenant", TENANT_NAMES)
async def test_the_tenant_claim_names_the_callers_tenant(
    make_auth: AuthFactory, issuer: Issuer, tenant: str
) -> None:
    auth = await issuer.auth(make_auth)
    who = await auth.authenticate(bearer(issuer.token(tenant=tenant)))
    assert (who.sub, who.tenant) == ("alice", tenant)


async def test_a_token_without_the_claim_belongs_to_the_default_tenant(
    make_auth: AuthFactory, issuer: Issuer
) -> None:
    assert (await (await issuer.auth(make_auth)).authenticate(bearer(issuer.token()))).tenant == (
        "default"
    )
    auth = await issuer.auth(make_auth, default_tenant="shared")
    assert (await auth.authenticate(bearer(issuer.token()))).tenant == "shared"


async def test_a_token_without_the_claim_is_refused_when_a_tenant_is_required(
    make_auth: AuthFactory, issuer: Issuer
) -> None:
    auth = await issuer.auth(make_auth, require_tenant=True)
    refused = await refusal(auth, issuer.token())
    assert refused.reason == "no_tenant" and "`tenant`" in refused.detail
    assert (await auth.authenticate(bearer(issuer.token(tenant="acme")))).tenant == "acme"


@pytest.mark.parametrize("value", NOT_TENANT_NAMES)
async def test_a_claim_that_is_not_a_tenant_name_is_refused(
    make_auth: AuthFactory, issuer: Issuer, value: Any
) -> None:
    auth = await issuer.auth(make_auth)
    refused = await refusal(auth, issuer.token(tenant=value))
    assert refused.reason == "bad_tenant" and "`tenant`" in refused.detail
    assert str(value) not in refused.detail or value == ""  # the value is not echoed back


async def test_a_custom_claim_names_the_tenant_and_the_usual_one_is_ignored(
    make_auth: AuthFactory, issuer: Issuer
) -> None:
    auth = await issuer.auth(make_auth, tenant_claim="org", require_tenant=True)
    both = issuer.token(org="globex", tenant="acme")
    assert (await auth.authenticate(bearer(both))).tenant == "globex"
    refused = await refusal(auth, issuer.token(tenant="acme"))
    assert refused.reason == "no_tenant" and "`org`" in refused.detail
    assert (await refusal(auth, issuer.token(org="a/b"))).reason == "bad_tenant"


async def test_over_http_a_missing_tenant_is_a_401_problem_naming_the_claim(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client, headers = await tenant_app(
        client_factory, settings, tmp_path, tenant_claim="org", require_tenant=True
    )
    response = await client.get("/models", headers=headers(None))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "`org`" in json_of(response)["detail"]
    created = await client.post(
        "/models",
        json={"name": "iris", "model_type": "sklearn.dummy.DummyClassifier"},
        headers=headers("acme"),
    )
    assert created.status_code == 201, created.text
    assert (json_of(created)["tenant"], json_of(created)["created_by"]) == ("acme", "alice")


async def test_over_http_a_token_without_the_claim_works_in_the_default_tenant(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client, headers = await tenant_app(client_factory, settings, tmp_path, default_tenant="shared")
    model = {"name": "iris", "model_type": "sklearn.dummy.DummyClassifier"}
    created = await client.post("/models", json=model, headers=headers(None))
    assert created.status_code == 201, created.text
    assert json_of(created)["tenant"] == "shared"
    assert json_of(await client.get("/models/iris", headers=headers("shared")))["tenant"] == (
        "shared"
    )
    assert (await client.get("/models/iris", headers=headers("acme"))).status_code == 404
