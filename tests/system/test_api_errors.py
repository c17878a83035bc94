"""Every kind of bad request gets the right status and an exact JSON error."""
import json
import socket
import uuid

from conftest import HTTP_PORT, TOKEN

MISSING = str(uuid.uuid4())


def test_malformed_json_is_400(api):
    status, body, _ = api.post("/api/v1/connections", raw=b'{"name": "x",')
    assert status == 400
    assert body == {"error": {"code": "malformed_json",
                              "message": "request body is not valid JSON (error near byte 12)"}}
    status, body, _ = api.post("/api/v1/connections", raw=b'["a"]')
    assert (status, body["error"]["message"]) == (400, "request body must be a JSON object")
    status, body, _ = api.post("/api/v1/connections", raw=b'{"name": "x"} trailing')
    assert (status, body["error"]["code"]) == (400, "malformed_json")


def test_missing_and_mistyped_fields_are_422(api):
    status, body, _ = api.post("/api/v1/connections", {"odbc": "Driver=SQLite3;Database=x"})
    assert status == 422
    assert body == {"error": {"code": "invalid_field", "field": "name",
                              "message": "name: is required"}}
    status, body, _ = api.post("/api/v1/connections", {"name": "x", "odbc": 5})
    assert (status, body["error"]["field"], body["error"]["message"]) == (
        422, "odbc", "odbc: must be a string")
    status, body, _ = api.post("/api/v1/connections", {"name": "x", "odbc": "nonsense"})
    assert (status, body["error"]["field"]) == (422, "odbc")
    status, body, _ = api.post("/api/v1/connections",
                               {"name": "x", "odbc": "Driver=a", "password": "p"})
    assert body["error"] == {"code": "invalid_field", "field": "password",
                             "message": "password: is not a field of a connection"}


def test_project_fields(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
    status, body, _ = api.post("/api/v1/projects", {
        "name": "p", "origin_connection_id": conn["id"],
        "destination_connection_id": conn["id"], "active": "yes"})
    assert (status, body["error"]["message"]) == (422, "active: must be true or false")
    status, body, _ = api.post("/api/v1/projects", {
        "name": "p", "origin_connection_id": conn["id"],
        "destination_connection_id": MISSING})
    assert status == 422
    assert body["error"] == {"code": "invalid_field", "field": "destination_connection_id",
                             "message": f"destination_connection_id: no connection with id '{MISSING}'"}
    status, body, _ = api.post("/api/v1/projects", {
        "name": "p", "origin_connection_id": "42", "destination_connection_id": conn["id"]})
    assert (status, body["error"]["field"]) == (422, "origin_connection_id")


def test_job_fields_and_inactive_project(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
    project = api.create("/api/v1/projects", {
        "name": "idle", "origin_connection_id": conn["id"],
        "destination_connection_id": conn["id"], "active": False})
    base = {"name": "j", "kind": "sql_transfer", "query": "SELECT 1", "destination_table": "t"}
    status, body, _ = api.post(f"/api/v1/projects/{project['id']}/jobs",
                               dict(base, destination_table='t"; DROP TABLE x; --'))
    assert (status, body["error"]["field"]) == (422, "destination_table")
    status, body, _ = api.post(f"/api/v1/projects/{project['id']}/jobs", dict(base, kind="bash"))
    assert body["error"]["message"] == \
        'kind: must be "sql_transfer", "python" or "sql", not "bash"'
    # A transfer's fields are not a python job's.
    status, body, _ = api.post(f"/api/v1/projects/{project['id']}/jobs", dict(base, kind="python"))
    assert (status, body["error"]["field"]) == (422, "query"), body
    assert body["error"]["message"] == "query: is not a field of a python job"
    job = api.create(f"/api/v1/projects/{project['id']}/jobs", base)
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 409
    assert body["error"] == {"code": "project_inactive", "message":
                             f"project {project['id']} is not active; activate it to run its jobs"}


def test_unknown_ids_and_routes(api):
    for path, what in (("connections", "connection"), ("projects", "project"),
                       ("jobs", "job"), ("runs", "run")):
        status, body, _ = api.get(f"/api/v1/{path}/{MISSING}")
        assert status == 404
        assert body == {"error": {"code": "not_found", "message": f"no {what} with id '{MISSING}'"}}
    status, body, _ = api.post(f"/api/v1/jobs/{MISSING}/runs")
    assert (status, body["error"]["message"]) == (404, f"no job with id '{MISSING}'")
    status, body, _ = api.post(f"/api/v1/projects/{MISSING}/jobs", {"name": "x"})
    assert status == 404
    status, body, _ = api.get("/api/v1/nothing")
    assert (status, body["error"]["message"]) == (404, "no route for GET /api/v1/nothing")
    status, body, headers = api.call("DELETE", "/api/v1/connections")
    assert status == 405
    assert body["error"]["message"] == "DELETE /api/v1/connections is not supported; use POST"
    assert headers["Allow"] == "POST"
    status, body, headers = api.call("POST", f"/api/v1/jobs/{MISSING}/schedule", {})
    assert (status, headers["Allow"]) == (405, "GET, PUT, DELETE, HEAD"), body


def signed(request):
    """The raw request with the session administrator's token after its request line."""
    auth = ("Authorization: Bearer " + TOKEN["admin"]).encode()
    return request.replace(b"\r\n", b"\r\n" + auth + b"\r\n", 1)


def raw_exchange(request, send_after=b""):
    """Sends raw bytes (signed in: see signed()), then reads the whole answer
    (the server closes)."""
    with socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=30) as sock:
        sock.sendall(signed(request))
        if send_after:
            try:
                sock.sendall(send_after)
            except OSError:
                pass  # the server may close before reading it: that is the point
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


TOO_LARGE = {"error": {"code": "body_too_large",
                       "message": "request body is larger than the limit of 1048576 bytes"}}


def test_body_over_one_mib_is_413(api):
    # Refused on the declared length alone: the client sends no body at all.
    status, body = raw_exchange(b"POST /api/v1/connections HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: 1048577\r\n\r\n")
    assert (status, body) == (413, TOO_LARGE)
    # Chunked, with no declared length: cut off once it passes the limit.
    chunk = b"a" * 65536
    chunked = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17 + b"0\r\n\r\n"
    status, body = raw_exchange(b"POST /api/v1/connections HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                                chunked)
    assert (status, body) == (413, TOO_LARGE)
    # A body of exactly the limit is read and judged on its content.
    exact = b'{"name": "' + b"a" * (1024 * 1024 - 12) + b'"}'
    assert len(exact) == 1024 * 1024
    status, body, _ = api.post("/api/v1/connections", raw=exact)
    assert (status, body["error"]["field"]) == (422, "name")


def test_connection_strings_are_read_by_their_grammar(api, mongo_db):
    """Secrets are masked wherever the grammar puts them (libpq's password in
    psqlODBC's Pqopt, other drivers' token keys), and a string that does not
    parse is refused with where, and stored nowhere."""
    odbc = ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Pqopt={password=hunter2 "
            "sslmode=disable};AuthToken=t0k3n;UID=u")
    conn = api.create("/api/v1/connections", {"name": "pq", "odbc": odbc})
    shown = ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Pqopt={password=******** "
             "sslmode=disable};AuthToken=********;UID=u")
    assert conn["odbc"] == shown
    stored = mongo_db.connections.find_one({"_id": conn["id"]})
    assert stored["odbc"] == shown and "hunter2" not in str(stored) and "t0k3n" not in str(stored)

    before = mongo_db.connections.count_documents({})
    for bad, why in [
        ("Driver=X;PWD={hunter2;UID=u", "'{' at byte 14 is never closed"),
        ("Driver=X;PWD={a}b", "text after the closing '}' at byte 17"),
        ("Driver=X;Server", "the attribute at byte 10 has no '=' (key=value expected)"),
    ]:
        status, body, _ = api.post("/api/v1/connections", {"name": "bad", "odbc": bad})
        assert (status, body) == (422, {"error": {
            "code": "invalid_field", "field": "odbc",
            "message": f"odbc: does not parse as an ODBC connection string: {why}"}}), bad
        assert "hunter2" not in json.dumps(body)
    assert mongo_db.connections.count_documents({}) == before


def test_body_that_is_not_utf8_or_holds_nul_is_400_and_stores_nothing(api, mongo_db):
    before = mongo_db.connections.count_documents({})
    for raw, why in [
        (b'{"name": "caf\xe9", "odbc": "Driver=SQLite3;Database=x"}', "a byte that is not UTF-8 at byte 14"),
        (b'{"name": "a\\u0000b", "odbc": "Driver=SQLite3;Database=x"}', "a NUL character (\\u0000) at byte 12"),
        (b'{"name\\u0000x": "a", "odbc": "Driver=SQLite3;Database=x"}', "a NUL character (\\u0000) at byte 7"),
    ]:
        status, body, _ = api.post("/api/v1/connections", raw=raw)
        assert (status, body) == (400, {"error": {
            "code": "malformed_json",
            "message": f"request body has {why}; it must be UTF-8 without NUL"}}), raw
    assert mongo_db.connections.count_documents({}) == before
