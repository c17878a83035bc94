"""The OpenAPI document (GET /api/v1/openapi.json): valid OpenAPI 3.1 by a real
validator, the same bytes as api/openapi.json, and exactly the router's
routes with the access each has. That every answer of the suite matches it
is checked as the answers arrive (conftest.py, OpenApiCheck)."""
import os
import subprocess
import urllib.request

from openapi_spec_validator import validate

from conftest import BIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Routes answered at the root as well as under /api/v1 (cv_api.c).
ROOT_ALIASES = {"/healthz", "/readyz", "/CreateProjects"}
METHODS = ("get", "put", "post", "delete", "patch")


def served(api):
    status, doc, headers = api.as_user("").get("/api/v1/openapi.json")
    assert status == 200, (status, doc)
    assert headers["Content-Type"] == "application/json"
    return doc


def test_the_document_is_valid_openapi_3_1(api):
    doc = served(api)
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on the first fault


def test_the_api_serves_the_committed_document(api):
    with urllib.request.urlopen(api.base + "/api/v1/openapi.json", timeout=30) as resp:
        got = resp.read()
    with open(os.path.join(ROOT, "api", "openapi.json"), "rb") as f:
        assert got == f.read()


def generic(path):
    """/api/v1/projects/{project_id}/members/{user_name} -> projects/{}/members/{}"""
    segs = path.split("/")
    return "/".join("{}" if s.startswith("{") else s for s in segs)


def test_the_document_lists_exactly_the_routes_of_the_router(api):
    doc = served(api)
    out = subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout
    router = {}
    for line in out.splitlines():
        method, path, access, scope, role = line.split()
        router[(method.lower(), path)] = (access, scope, role)
    documented = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                documented[(method, generic(path))] = item[method]
    under_api = {k for k in documented if k[1].startswith("/api/v1/")}
    assert sorted(under_api) == sorted(router), (
        "only in the router: %s; only in the document: %s"
        % (sorted(set(router) - under_api), sorted(under_api - set(router))))
    at_root = {k for k in documented if not k[1].startswith("/api/v1/")}
    assert {p for _, p in at_root} == ROOT_ALIASES
    for method, path in at_root:
        assert (method, "/api/v1" + path) in router, (method, path)
    # Who may call each, as the router checks it.
    for (method, path), (access, scope, role) in router.items():
        op = documented[(method, path)]
        assert op["x-convutell-access"] == access, (method, path)
        assert op.get("x-convutell-scope", "-") == scope, (method, path)
        assert op.get("x-convutell-role", "-") == role, (method, path)
        codes = set(op["responses"])
        assert any(c.startswith("2") for c in codes), (method, path)
        assert "5XX" in codes, (method, path)
        if access == "open":
            assert op["security"] == [], (method, path)
        else:
            assert "401" in codes, (method, path)
        if scope != "-":
            assert "404" in codes, (method, path)
        if access == "admin" or role not in ("-", "viewer") or method != "get":
            assert "403" in codes or access == "open", (method, path)
        if "requestBody" in op:
            assert {"400", "422"} <= codes, (method, path)


def test_every_error_answer_has_the_one_error_body(api):
    """The document promises one error body: every 4XX it lists is the Error
    schema (the health routes' 503 is their own answer)."""
    doc = served(api)
    for path, item in doc["paths"].items():
        for method in METHODS:
            for code, response in item.get(method, {}).get("responses", {}).items():
                if code.startswith("4") or code == "5XX":
                    name = response["$ref"].rsplit("/", 1)[1]
                    schema = doc["components"]["responses"][name]["content"][
                        "application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, code)
