"""Role × route × office (issue 10): every route of the app's router, called with no token and
with a token of every role from the record's own office and from another office.

* staff routes: no token 401; a role that may not 403; a role that may, from the record's own
  office, reaches the use case (neither 401, 403 nor 404); from another office 404 for a route
  that names a record (exactly like a record that does not exist), its own office's data only
  for one that does not;
* the console's pages: the same, but no credential at all is a 303 to /login (a browser
  without a session is sent to sign in), never a 401;
* every other route ignores staff tokens: the applicant's token, the courier's signature or
  nothing at all is its credential.

:data:`MATRIX` must name every route the router serves, and only those: a new route without an
entry here fails :func:`test_the_matrix_names_every_route`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import site_kit
from site_kit import Site
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import SessionFactory
from courier.services.staff import ROLES
from courier.web import openapi


@dataclass(frozen=True)
class Rule:
    auth: str  # staff | console | public | operator
    roles: tuple[str, ...] = ()  # besides admin (staff routes)
    record: bool = False  # the path names a record of one office (another office's is 404)
    statuses: frozenset[int] = frozenset()  # public: the answers any caller may get


DISPATCH = ("dispatcher",)
CONTRACTS = ("contract_manager",)
ANY = frozenset(range(200, 500)) - {401}
MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule("public", statuses=frozenset({200})),
    ("GET", "/readyz"): Rule("public", statuses=frozenset({200})),
    # closed unless metrics.bearer_token or metrics.listen is set: no staff token opens it
    ("GET", "/metrics"): Rule("operator", statuses=frozenset({401, 403, 404})),
    ("GET", "/openapi.json"): Rule("public", statuses=frozenset({200})),
    ("GET", "/docs"): Rule("public", statuses=frozenset({200})),
    ("GET", "/docs/assets/{name}"): Rule("public", statuses=frozenset({200})),
    ("GET", "/static/site.css"): Rule("public", statuses=frozenset({200})),
    ("GET", "/t/{token}"): Rule("public", statuses=frozenset({200})),
    ("POST", "/t/{token}/confirm"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("GET", "/t/{rest}"): Rule("public", statuses=frozenset({404})),
    ("POST", "/t/{token}/report"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("POST", "/t/{token}/rate"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("GET", "/api/v1/regions"): Rule("public", statuses=frozenset({200})),
    ("GET", "/api/v1/regions/{code}"): Rule("public", statuses=frozenset({200})),
    ("GET", "/static/optin.js"): Rule("public", statuses=frozenset({200})),
    ("GET", "/opt-in"): Rule("public", statuses=frozenset({200})),
    ("POST", "/opt-in"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("GET", "/n/stop/{stop}"): Rule("public", statuses=frozenset({200})),
    ("POST", "/n/stop/{stop}"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("POST", "/webhooks/{courier}"): Rule("public", statuses=frozenset({200})),
    ("POST", "/api/v1/delivery-requests"): Rule("public", statuses=ANY),
    ("GET", "/api/v1/track/{token}"): Rule("public", statuses=frozenset({200})),
    ("POST", "/api/v1/track/{token}/confirm"): Rule("public", statuses=frozenset({422, 429})),
    ("PUT", "/api/v1/applications/{application_no}"): Rule("staff", ("intake",)),
    ("POST", "/api/v1/applications/{application_no}/ready"): Rule("staff", ("intake",), True),
    ("GET", "/api/v1/exceptions"): Rule("staff", DISPATCH),
    ("GET", "/api/v1/deliveries/{id}"): Rule("staff", DISPATCH, True),
    ("GET", "/api/v1/deliveries/{id}/artefacts/{sha256}"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/handovers/{id}/review"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/reship"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/collected"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/booking/waybill"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/booking/release"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/cancel"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/returned-to-office"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/manifests"): Rule("staff", DISPATCH),
    ("GET", "/api/v1/manifests/{id}"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/manifests/{id}/seals"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/manifests/{id}/handover"): Rule("staff", DISPATCH, True),
    ("GET", "/api/v1/manifests/{id}.pdf"): Rule("staff", DISPATCH, True),
    ("DELETE", "/api/v1/manifests/{id}/items/{delivery_id}"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/rebook"): Rule("staff", DISPATCH, True),
    ("POST", "/api/v1/deliveries/{id}/address"): Rule("staff", DISPATCH, True),
    ("PUT", "/api/v1/office/sender"): Rule("staff", DISPATCH),
    ("POST", "/api/v1/deliveries/{id}/lost"): Rule("staff", DISPATCH, True),
    ("GET", "/api/v1/packing"): Rule("staff", DISPATCH, True),  # by application number
    ("POST", "/api/v1/deliveries/{id}/seal"): Rule("staff", DISPATCH, True),
    ("GET", "/api/v1/deliveries/{id}/label.pdf"): Rule("staff", DISPATCH, True),
    ("GET", "/api/v1/labels.pdf"): Rule("staff", DISPATCH),
    ("GET", "/api/v1/board"): Rule("staff", DISPATCH),
    ("GET", "/api/v1/deliveries"): Rule("staff", DISPATCH),
    ("POST", "/api/v1/exceptions/{id}/resolve"): Rule("staff", DISPATCH, True),
    # the dispatch console (courier/web/console.py): a session or a token
    ("GET", "/login"): Rule("public", statuses=frozenset({200})),
    ("POST", "/login"): Rule("public", statuses=frozenset({403})),  # no CSRF field
    ("POST", "/logout"): Rule("public", statuses=frozenset({303})),
    ("GET", "/lang/{code}"): Rule("public", statuses=frozenset({303})),
    ("GET", "/static/console.css"): Rule("public", statuses=frozenset({200})),
    ("GET", "/"): Rule("console", DISPATCH),
    ("GET", "/deliveries"): Rule("console", DISPATCH),
    ("GET", "/deliveries.csv"): Rule("console", DISPATCH),
    ("GET", "/deliveries/{id}"): Rule("console", DISPATCH, True),
    ("GET", "/deliveries/{id}/pod/{proof}/{index}"): Rule("console", DISPATCH, True),
    ("GET", "/exceptions"): Rule("console", DISPATCH),
    ("POST", "/exceptions/{id}/resolve"): Rule("console", DISPATCH, True),
    ("GET", "/api/v1/contracts"): Rule("staff", CONTRACTS),
    ("POST", "/api/v1/contracts"): Rule("staff", CONTRACTS),
    ("GET", "/api/v1/contracts/{id}"): Rule("staff", CONTRACTS, True),
    ("PUT", "/api/v1/contracts/{id}"): Rule("staff", CONTRACTS, True),
    ("POST", "/api/v1/contracts/{id}/status"): Rule("staff", CONTRACTS, True),
    ("GET", "/api/v1/scorecards"): Rule("staff", CONTRACTS),
    ("GET", "/api/v1/scorecards.csv"): Rule("staff", CONTRACTS),
}


@pytest.fixture
async def site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with site_kit.make_site(engine, sessions, tmp_path) as made:
        yield made


async def test_the_matrix_names_every_route(site: Site) -> None:
    served = set(site_kit.app_routes(site.app))
    assert served - set(MATRIX) == set(), "routes without an authorization rule"
    assert set(MATRIX) - served == set(), "rules for routes the app does not serve"
    for op in openapi.CATALOGUE:  # the document says the same about who may call
        rule = MATRIX[(op.method, op.path)]
        assert (rule.auth == "staff") == (op.auth == "staff"), op.path
        assert rule.roles == op.roles, op.path


def _expected_staff(rule: Rule, role: str | None, same_office: bool) -> set[int] | None:
    """The statuses a staff route may answer; None: the use case was reached."""
    if role is None:
        return {303} if rule.auth == "console" else {401}
    if role != "admin" and role not in rule.roles:
        return {403}
    if rule.record and not same_office:
        return {404}
    return None


async def test_every_role_on_every_route_from_every_office(site: Site) -> None:
    blt_delivery = site.offices["BLT"].delivery_id
    checked = 0
    for (method, template), rule in sorted(MATRIX.items()):
        call = site_kit.requests_for(site, method, template, office="BLT")
        for office in ("KDR", "BLT"):  # another office's tokens first: they must change nothing
            for role in (None, *ROLES):
                token = site.offices[office].tokens[role] if role else None
                status, _, body = await site_kit.send(site, call, token=token)
                cell = (method, template, office, role, status)
                checked += 1
                assert status < 500, (cell, body[:300])
                if rule.auth not in ("staff", "console"):
                    assert status in rule.statuses, (cell, body[:300])
                    continue
                expected = _expected_staff(rule, role, office == "BLT")
                if expected is not None:
                    assert status in expected, (cell, body[:300])
                    continue
                assert status not in (401, 403, 404), (cell, body[:300])
                if template == "/api/v1/exceptions" and office != "BLT":
                    items = json.loads(body)["items"]
                    assert blt_delivery not in {i["delivery_id"] for i in items}, cell
    assert checked == len(MATRIX) * 2 * (len(ROLES) + 1)
