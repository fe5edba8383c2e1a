"""The API describes itself: OpenAPI JSON and the interactive docs page."""

from django.test import Client

MAIN_PATHS = [
    "/api/v1/markets",
    "/api/v1/markets/{code}",
    "/api/v1/markets/{code}/zones",
    "/api/v1/markets/{code}/stalls",
    "/api/v1/stalls/{stall_id}",
    "/api/v1/markets/{code}/holders",
    "/api/v1/holders/{holder_id}",
    "/api/v1/leases",
    "/api/v1/markets/{code}/leases",
    "/api/v1/leases/{lease_id}",
    "/api/v1/markets/{code}/tariffs",
    "/api/v1/tariffs/{tariff_id}",
    "/api/v1/markets/{code}/readings",
    "/api/v1/markets/{code}/billing-runs",
    "/api/v1/billing-runs",
    "/api/v1/billing-runs/{run_id}/cancel",
    "/api/v1/demands",
    "/api/v1/demands/{demand_id}",
]


def openapi() -> dict:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_openapi_document_loads_and_lists_the_main_paths(db):
    schema = openapi()
    assert schema["info"]["title"] == "market40 API"
    missing = [p for p in MAIN_PATHS if p not in schema["paths"]]
    assert missing == []


def test_every_operation_documents_the_error_envelope(db):
    schema = openapi()
    envelope = schema["components"]["schemas"]["Error"]
    assert envelope["required"] == ["code", "message", "extra"]
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_bearer_and_session_auth_are_both_documented(db):
    schemes = openapi()["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("scheme"), s.get("in")) for s in schemes.values()}
    assert ("http", "bearer", None) in kinds and ("apiKey", None, "cookie") in kinds


def test_lists_document_limit_offset_and_count(db):
    operation = openapi()["paths"]["/api/v1/demands"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"limit", "offset", "market", "period", "status", "stall", "holder"} <= names


def test_the_docs_page_loads(db):
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content
