"""The whole API, first step: projects, jobs and connections listed (a page at a
time, filtered), changed and deleted. A change makes a job's next version and a
run queued before it runs the definition it was queued with; what is in use is
not deleted (409 naming what uses it); a deleted project's runs stay readable by
administrators."""
import json
import time
import uuid

import psycopg
import pytest

from conftest import PG_ODBC, kcat
from test_rights import person


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def new_project(client, project_name=None):
    conn = client.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    return client.create("/api/v1/projects", {"name": project_name or name("p"),
                                              "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]}), conn


def walk(client, path, key, limit, param="after"):
    """Every item of a list, a page of `limit` at a time."""
    seen, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&{param}={cursor}" if cursor else "")
        status, page, _ = client.get(url)
        assert status == 200, page
        assert len(page[key]) <= limit
        seen += page[key]
        cursor = page["next"]
        if cursor is None:
            return seen


def test_projects_listed_by_member_filtered_and_paged(api):
    alice, alice_api = person(api, "alice")
    bob, bob_api = person(api, "bob")
    tag = uuid.uuid4().hex[:6]
    mine = [new_project(alice_api, f"{tag} Sales {i}")[0] for i in range(3)]
    mine.append(new_project(alice_api, f"{tag} hr")[0])
    theirs = new_project(bob_api, f"{tag} sales of bob")[0]
    for param in ("after", "cursor"):
        got = walk(alice_api, "/api/v1/projects", "projects", 2, param)
        assert [p["id"] for p in got] == [p["id"] for p in mine]
    got = walk(alice_api, f"/api/v1/projects?q={tag}%20SALES", "projects", 1)
    assert [p["name"] for p in got] == [f"{tag} Sales {i}" for i in range(3)]
    assert [p["id"] for p in walk(bob_api, "/api/v1/projects", "projects", 10)] == [theirs["id"]]
    # A regular expression is text here.
    assert bob_api.get("/api/v1/projects?q=.*")[1] == {"projects": [], "next": None}
    everyone = [p["id"] for p in walk(api, f"/api/v1/projects?q={tag}", "projects", 500)]
    assert everyone == [p["id"] for p in mine] + [theirs["id"]]
    first = mine[0]
    assert first["created_by"] == alice and first["created_at"] == first["updated_at"]
    for bad, message in (("limit=0", "limit: must be a whole number from 1 to 500"),
                         ("after=nonsense", "after: is not a cursor of this list (pass back "
                                            "the 'next' of a page)"),
                         ("q=" + "x" * 201, "q: must be at most 200 characters")):
        status, doc, _ = alice_api.get(f"/api/v1/projects?{bad}")
        assert (status, doc["error"]["message"]) == (422, message), bad


def test_jobs_listed_by_kind_schedule_and_name(api):
    project, _ = new_project(api)
    pid = project["id"]
    made = [api.create(f"/api/v1/projects/{pid}/jobs", body) for body in (
        {"name": "Load orders", "kind": "sql", "statements": "SELECT 1"},
        {"name": "score", "kind": "python", "script": "print(1)"},
        {"name": "copy orders", "kind": "sql_transfer", "query": "SELECT 1 AS n",
         "destination_table": "orders_copy"},
        {"name": "nightly", "kind": "sql", "statements": "SELECT 2"})]
    status, _, _ = api.call("PUT", f"/api/v1/jobs/{made[3]['id']}/schedule",
                            {"cron": "0 3 * * *", "timezone": "UTC"})
    assert status == 200
    ids = lambda query: [j["id"] for j in walk(api, f"/api/v1/projects/{pid}/jobs{query}",
                                               "jobs", 2)]
    assert ids("") == [j["id"] for j in made]
    assert ids("?kind=sql") == [made[0]["id"], made[3]["id"]]
    assert ids("?scheduled=true") == [made[3]["id"]]
    assert ids("?scheduled=false&kind=sql") == [made[0]["id"]]
    assert ids("?q=ORDERS") == [made[0]["id"], made[2]["id"]]
    for bad, message in (("kind=shell", 'kind: must be "sql_transfer", "python" or "sql", '
                                        'not "shell"'),
                         ("scheduled=yes", 'scheduled: must be true or false, not "yes"')):
        status, doc, _ = api.get(f"/api/v1/projects/{pid}/jobs?{bad}")
        assert (status, doc["error"]["message"]) == (422, message), bad


@pytest.fixture()
def marks(pg):
    table = "manage_marks_" + uuid.uuid4().hex[:6]
    pg.execute(f"CREATE TABLE {table} (v text)")
    yield table
    pg.execute(f"DROP TABLE {table}")


def marked(pg, table):
    return [r[0] for r in pg.execute(f"SELECT v FROM {table} ORDER BY v")]


def test_a_change_is_the_next_version_and_a_queued_run_keeps_its_own(api, services, pg, marks):
    project, _ = new_project(api)
    job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                     {"name": "mark", "kind": "sql",
                      "statements": f"INSERT INTO {marks} VALUES ('v1')"})
    assert job["version"] == 1
    # Queued while no worker runs, then the job changes: the run keeps version 1.
    assert services.stop("worker") == 0
    try:
        status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202
        status, changed, _ = api.call("PATCH", f"/api/v1/jobs/{job['id']}",
                                      {"statements": f"INSERT INTO {marks} VALUES ('v2')",
                                       "name": "mark it"})
        assert status == 200, changed
        assert (changed["version"], changed["name"], changed["kind"]) == (2, "mark it", "sql")
        assert changed["created_at"] == job["created_at"]
        assert changed["updated_at"] >= job["updated_at"]
    finally:
        services.start("worker")
    assert api.wait_run(queued["run_id"])["status"] == "succeeded"
    assert marked(pg, marks) == ["v1"]
    status, second, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert api.wait_run(second["run_id"])["status"] == "succeeded"
    assert marked(pg, marks) == ["v1", "v2"]

    # A change is checked as a new job is, and names the field.
    for body, field, message in (
            ({"statements": ""}, "statements", "statements: must not be empty"),
            ({"connection": "sideways"}, "connection",
             'connection: must be "origin" or "destination", not "sideways"'),
            ({"kind": "python"}, "kind",
             "kind: cannot change: this is a sql job; make a new job instead"),
            ({"script": "print(1)"}, "script", "script: is not a field of a sql job"),
            ({"name": None}, "name", "name: is required")):
        status, doc, _ = api.call("PATCH", f"/api/v1/jobs/{job['id']}", body)
        assert (status, doc["error"]["field"], doc["error"]["message"]) == (
            422, field, message), body
    assert api.get(f"/api/v1/jobs/{job['id']}")[1]["version"] == 2

    # null takes an optional field away.
    transfer = api.create(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "t", "kind": "sql_transfer", "query": "SELECT 1 AS n",
        "destination_table": "manage_t", "transform": "def transform(row):\n    return row\n",
        "timeout_seconds": 60})
    status, doc, _ = api.call("PATCH", f"/api/v1/jobs/{transfer['id']}",
                              {"transform": None, "mode": "replace"})
    assert status == 200, doc
    assert "transform" not in doc and doc["mode"] == "replace" and doc["timeout_seconds"] == 60


def test_deleting_jobs_connections_and_projects(api, services, pg, marks):
    alice, alice_api = person(api, "alice")
    project, conn = new_project(alice_api)
    pid = project["id"]
    job = alice_api.create(f"/api/v1/projects/{pid}/jobs",
                           {"name": "mark", "kind": "sql",
                            "statements": f"INSERT INTO {marks} VALUES ('kept')"})
    jid = job["id"]
    # In use: answered 409, naming what uses it.
    assert alice_api.call("PUT", f"/api/v1/jobs/{jid}/schedule",
                          {"interval_seconds": 3600})[0] == 200
    assert alice_api.call("DELETE", f"/api/v1/jobs/{jid}")[:2] == (409, {"error": {
        "code": "in_use", "message": f"job {jid} has a schedule: DELETE /api/v1/jobs/{jid}/"
                                     "schedule first"}})
    assert alice_api.call("DELETE", f"/api/v1/connections/{conn['id']}")[:2] == (409, {"error": {
        "code": "in_use", "message": f"connection {conn['id']} is used by project {pid}: "
                                     "change it first"}})
    assert alice_api.call("DELETE", f"/api/v1/jobs/{jid}/schedule")[0] == 200

    # A run queued before the job is deleted still runs; the job is gone for the API.
    assert services.stop("worker") == 0
    try:
        status, queued, _ = alice_api.post(f"/api/v1/jobs/{jid}/runs")
        assert status == 202
        assert alice_api.call("DELETE", f"/api/v1/jobs/{jid}")[0] == 204
    finally:
        services.start("worker")
    assert alice_api.wait_run(queued["run_id"])["status"] == "succeeded"
    assert marked(pg, marks) == ["kept"]
    gone = (404, {"error": {"code": "not_found", "message": f"no job with id '{jid}'"}})
    for method in ("GET", "PATCH", "DELETE"):
        assert alice_api.call(method, f"/api/v1/jobs/{jid}", {} if method != "GET" else None
                              )[:2] == gone, method
    assert alice_api.post(f"/api/v1/jobs/{jid}/runs")[:2] == gone
    assert alice_api.get(f"/api/v1/projects/{pid}/jobs")[1]["jobs"] == []

    # A project deleted: its jobs and itself are gone, its runs stay for administrators.
    other = alice_api.create(f"/api/v1/projects/{pid}/jobs",
                             {"name": "other", "kind": "sql", "statements": "SELECT 1"})
    assert alice_api.call("PUT", f"/api/v1/jobs/{other['id']}/schedule",
                          {"interval_seconds": 3600})[0] == 200
    assert alice_api.call("DELETE", f"/api/v1/projects/{pid}")[0] == 204
    assert alice_api.get(f"/api/v1/projects/{pid}")[:2] == (404, {"error": {
        "code": "not_found", "message": f"no project with id '{pid}'"}})
    assert alice_api.get(f"/api/v1/jobs/{other['id']}")[0] == 404
    assert all(p["id"] != pid for p in alice_api.get("/api/v1/projects")[1]["projects"])
    assert alice_api.get(f"/api/v1/runs/{queued['run_id']}")[0] == 404
    assert api.get(f"/api/v1/runs/{queued['run_id']}")[1]["status"] == "succeeded"
    # The schedule went with it; now nothing uses the connection.
    assert alice_api.call("DELETE", f"/api/v1/connections/{conn['id']}")[0] == 404
    assert api.call("DELETE", f"/api/v1/connections/{conn['id']}")[0] == 204
    assert api.get(f"/api/v1/connections/{conn['id']}")[0] == 404


def test_a_project_lists_its_connections_as_the_role_sees_them(api):
    alice, alice_api = person(api, "alice")
    viewer, viewer_api = person(api, "view")
    project, _ = new_project(alice_api)
    pid = project["id"]
    made = [alice_api.create("/api/v1/connections", {"name": f"c{i}", "odbc": PG_ODBC,
                                                     "project_id": pid}) for i in range(3)]
    alice_api.create(f"/api/v1/projects/{pid}/members", {"user": viewer, "role": "viewer"})
    owned = walk(alice_api, f"/api/v1/projects/{pid}/connections", "connections", 2)
    # The first connection was the maker's until the project took it: it is there too.
    assert [c["id"] for c in owned][-3:] == [c["id"] for c in made]
    assert all(c["odbc"].endswith("UID=convutell;PWD=********") for c in owned)
    seen = walk(viewer_api, f"/api/v1/projects/{pid}/connections?q=C1", "connections", 10)
    assert [(c["id"], c["odbc"]) for c in seen] == [
        (made[1]["id"], PG_ODBC.replace("UID=convutell;PWD=convutell", ""))]
    assert made[0]["created_by"] == alice


def test_a_runs_log_searched_and_filtered(api):
    project, _ = new_project(api)
    job = api.create(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "talk", "kind": "python",
        # Apart in time: lines of two pipes are ordered as they are read.
        "script": "import sys, time\nprint('Hello World', flush=True)\ntime.sleep(0.3)\n"
                  "print('oops: disk (50%) full', file=sys.stderr, flush=True)\n"
                  "time.sleep(0.3)\nprint('hello again', flush=True)\n"})
    status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    run = api.wait_run(queued["run_id"])
    assert run["status"] == "succeeded", run
    path = f"/api/v1/runs/{run['id']}/events"
    lines = lambda query: [(e["stream"], e["line"]) for e in
                           walk(api, f"{path}?type=run.log{query}", "events", 1)]
    assert lines("") == [("stdout", "Hello World"), ("stderr", "oops: disk (50%) full"),
                         ("stdout", "hello again")]
    assert lines("&stream=stderr") == [("stderr", "oops: disk (50%) full")]
    assert lines("&q=HELLO") == [("stdout", "Hello World"), ("stdout", "hello again")]
    assert lines("&q=(50%25)") == [("stderr", "oops: disk (50%) full")]  # text, not a pattern
    types = [e["type"] for e in walk(api, path, "events", 500)]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    assert [e["type"] for e in walk(api, f"{path}?type=run.succeeded", "events", 5)] == [
        "run.succeeded"]
    # A time range: everything from the first log line on, nothing after the end.
    first = api.get(f"{path}?type=run.log&limit=1")[1]["events"][0]["time"]
    since = [e["type"] for e in walk(api, f"{path}?since={first}", "events", 500)]
    assert since[0] == "run.log" and "run.queued" not in since
    assert api.get(f"{path}?until={first}&type=run.log")[1]["events"] == []
    for bad, message in (("type=run.bogus", 'type: "run.bogus" is not one of run.queued, '
                                            'run.started, run.progress, run.succeeded, '
                                            'run.failed, run.cancelled, run.timed_out, '
                                            'job.rejected, run.log, run.retrying'),
                         ("stream=stdin", 'stream: "stdin" is not one of stdout, stderr'),
                         ("since=yesterday", "since: must be a time such as "
                                             "2026-12-05T10:00:00Z")):
        status, doc, _ = api.get(f"{path}?{bad}")
        assert (status, doc["error"]["message"]) == (422, message), bad


def test_liveness_and_readiness(api):
    anonymous = api.as_user("")
    for path in ("/api/v1/healthz", "/healthz"):
        assert anonymous.get(path)[:2] == (200, {"status": "alive"})
    for path in ("/api/v1/readyz", "/readyz"):
        assert anonymous.get(path)[:2] == (200, {"status": "ready", "mongodb": "ok",
                                                 "kafka": "ok"})


def test_if_match_keeps_two_editors_from_overwriting_each_other(api):
    project, _ = new_project(api)
    pid = project["id"]
    status, job, headers = api.post(f"/api/v1/projects/{pid}/jobs",
                                    {"name": "j", "kind": "sql", "statements": "SELECT 1"})
    assert (status, headers["ETag"]) == (201, '"v1"')
    path = f"/api/v1/jobs/{job['id']}"
    assert api.get(path)[2]["ETag"] == '"v1"'
    status, doc, headers = api.call("PATCH", path, {"statements": "SELECT 2"},
                                    headers={"If-Match": '"v1"'})
    assert (status, doc["version"], headers["ETag"]) == (200, 2, '"v2"')
    # The second editor read version 1 too: refused, nothing overwritten.
    assert api.call("PATCH", path, {"statements": "SELECT 3"},
                    headers={"If-Match": '"v1"'})[:2] == (412, {"error": {
                        "code": "precondition_failed",
                        "message": f'job {job["id"]} is at "v2", not at the If-Match "v1": '
                                   "read it again"}})
    assert api.get(path)[1]["statements"] == "SELECT 2"
    assert api.call("PATCH", path, {"statements": "SELECT 3"},
                    headers={"If-Match": "*"})[1]["version"] == 3
    assert api.call("PATCH", path, {"statements": "SELECT 4"})[1]["version"] == 4

    status, _, headers = api.get(f"/api/v1/projects/{pid}")
    seen = headers["ETag"]
    status, doc, headers = api.call("PATCH", f"/api/v1/projects/{pid}", {"name": "renamed"},
                                    headers={"If-Match": seen})
    assert status == 200 and doc["name"] == "renamed" and headers["ETag"] != seen
    status, doc, _ = api.call("PATCH", f"/api/v1/projects/{pid}", {"name": "again"},
                              headers={"If-Match": seen})
    assert (status, doc["error"]["code"]) == (412, "precondition_failed")
    assert api.get(f"/api/v1/projects/{pid}")[1]["name"] == "renamed"


def test_an_idempotency_key_answers_a_retry_with_the_first_answer(api, mongo_db):
    from conftest import RECORD
    alice, alice_api = person(api, "alice")
    project, _ = new_project(alice_api)
    key = {"Idempotency-Key": "retry-" + uuid.uuid4().hex}
    path = f"/api/v1/projects/{project['id']}/jobs"
    body = {"name": "once", "kind": "sql", "statements": "SELECT 1"}
    first = alice_api.post(path, body, headers=key)
    again = alice_api.post(path, body, headers=key)
    assert first[0] == 201 and again[:2] == first[:2]
    assert again[2]["Location"] == first[2]["Location"]
    assert [j["id"] for j in alice_api.get(path)[1]["jobs"]] == [first[1]["id"]]
    # A run too: one record, one answer.
    runs = f"/api/v1/jobs/{first[1]['id']}/runs"
    run_key = {"Idempotency-Key": "run-" + uuid.uuid4().hex}
    one = alice_api.post(runs, {"max_attempts": 2}, headers=run_key)
    two = alice_api.post(runs, {"max_attempts": 2}, headers=run_key)
    assert one[0] == 202 and two[:2] == one[:2]
    assert mongo_db.runs.count_documents(dict(RECORD, job_id=first[1]["id"])) == 1
    alice_api.wait_run(one[1]["run_id"])
    # The same key for another request, an empty key: refused, naming the header.
    for headers, message in ((run_key, "Idempotency-Key: was used for another request in the "
                                       "last 24 hours"),
                             ({"Idempotency-Key": ""}, "Idempotency-Key: must be 1 to 200 "
                                                       "characters")):
        status, doc, _ = alice_api.post(runs, {"max_attempts": 3}, headers=headers)
        assert (status, doc["error"]["field"], doc["error"]["message"]) == (
            422, "Idempotency-Key", message)
    # A key is its user's: another caller's same key is their own request.
    assert api.post(path, body, headers=key)[0] == 201
    assert len(alice_api.get(path)[1]["jobs"]) == 2


def test_each_user_has_an_inbox_of_their_projects_failures(api):
    alice, alice_api = person(api, "alice")
    bob, bob_api = person(api, "bob")
    project, _ = new_project(alice_api)
    job = alice_api.create(f"/api/v1/projects/{project['id']}/jobs",
                           {"name": "broken", "kind": "sql",
                            "statements": "SELECT * FROM no_such_table_in_inbox"})
    failed = []
    for _ in range(2):
        status, queued, _ = alice_api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert alice_api.wait_run(queued["run_id"])["status"] == "failed"
        failed.append(queued["run_id"])
    deadline = time.time() + 30
    while alice_api.get("/api/v1/notifications/unread-count")[1] != {"unread": 2}:
        assert time.time() < deadline, alice_api.get("/api/v1/notifications")
        time.sleep(0.2)
    status, inbox, _ = alice_api.get("/api/v1/notifications")
    assert [(n["id"], n["status"], n["read"]) for n in inbox["notifications"]] == [
        (failed[1], "failed", False), (failed[0], "failed", False)]  # newest first
    # Not bob's: he sees none of it and cannot mark it.
    assert bob_api.get("/api/v1/notifications")[1] == {"notifications": [], "next": None}
    assert bob_api.post(f"/api/v1/notifications/{failed[0]}/read")[:2] == (404, {"error": {
        "code": "not_found", "message": f"no notification with id '{failed[0]}'"}})
    assert alice_api.post(f"/api/v1/notifications/{failed[0]}/read")[0] == 204
    assert alice_api.get("/api/v1/notifications/unread-count")[1] == {"unread": 1}
    assert [(n["id"], n["read"]) for n in
            alice_api.get("/api/v1/notifications")[1]["notifications"]] == [
        (failed[1], False), (failed[0], True)]
    assert [n["id"] for n in alice_api.get("/api/v1/notifications?unread=true")[1][
        "notifications"]] == [failed[1]]
    assert alice_api.post("/api/v1/notifications/read-all")[0] == 204
    assert alice_api.get("/api/v1/notifications/unread-count")[1] == {"unread": 0}
    assert alice_api.get("/api/v1/notifications?unread=true")[1]["notifications"] == []
    assert all(n["read"] for n in alice_api.get("/api/v1/notifications")[1]["notifications"])
    status, doc, _ = alice_api.get("/api/v1/notifications?unread=maybe")
    assert (status, doc["error"]["message"]) == (422, 'unread: must be true or false, not "maybe"')


def test_a_connection_changed_is_used_by_the_next_run(api, tmp_path):
    """PATCH /connections/{id}: a new name and string, checked, masked and
    sealed as a new one's; the next run reads the new database."""
    import sqlite3
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    for path, value in ((first, 1), (second, 2)):
        with sqlite3.connect(path) as c:
            c.execute("CREATE TABLE v (n INTEGER)")
            c.execute("INSERT INTO v VALUES (?)", (value,))
    conn = api.create("/api/v1/connections", {"name": "lite", "odbc": f"Driver=SQLite3;"
                                                                      f"Database={first}"})
    project = api.create("/api/v1/projects", {"name": name("patchconn"),
                                              "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    path = f"/api/v1/connections/{conn['id']}"
    status, got, headers = api.get(path)
    etag = headers["ETag"]
    for body, field in (({"odbc": "nothing"}, "odbc"), ({"port": 1}, "port"), ({"name": ""},
                                                                                "name")):
        status, bad, _ = api.call("PATCH", path, body)
        assert (status, bad["error"]["field"]) == (422, field), bad
    status, changed, _ = api.call("PATCH", path, {"name": "lite2", "odbc": f"Driver=SQLite3;"
                                                  f"Database={second}"},
                                  headers={"If-Match": etag})
    assert status == 200, changed
    assert (changed["name"], changed["odbc"]) == ("lite2", f"Driver=SQLite3;Database={second}")
    status, stale, _ = api.call("PATCH", path, {"name": "x"}, headers={"If-Match": etag})
    assert (status, stale["error"]["code"]) == (412, "precondition_failed")
    deadline = time.time() + 15  # workers read connections through a cache of 2 s
    while True:
        status, body, _ = api.post(f"/api/v1/projects/{project['id']}/queries/run",
                                   {"connection": "origin", "sql": "SELECT n FROM v"})
        assert status == 200, body
        if body["rows"] == [[2]] or time.time() > deadline:
            break
        time.sleep(0.5)
    assert body["rows"] == [[2]], body


def test_a_jobs_runs_filtered_by_status_trigger_and_time(api):
    """GET /jobs/{id}/runs?status=&trigger=&since=&until=: every run the
    filter keeps, newest first, once, over pages; the rest left out."""
    project, _ = new_project(api)
    job = api.create(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "sometimes", "kind": "python",
        "script": "import json, os, sys\n"
                  "sys.exit(json.loads(os.environ['CONVUTELL_PARAMETERS']).get('code', 0))\n"})
    queued = []
    for i in range(9):  # runs 0, 3 and 6 fail
        status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs",
                                  {"parameters": {"code": 1 if i % 3 == 0 else 0}})
        assert status == 202, run
        queued.append(run["run_id"])
    external = str(uuid.uuid4())  # a message another system wrote
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], data=json.dumps({
        "schema": "convutell.job.v2", "run_id": external, "job_id": job["id"],
        "project_id": project["id"], "attempt": 1,
        "queued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
    for run_id in queued + [external]:
        api.wait_run(run_id)
    path = f"/api/v1/jobs/{job['id']}/runs"
    every = walk(api, path, "runs", 500)
    assert sorted(r["id"] for r in every) == sorted(queued + [external])
    by_status = {s: {r["id"] for r in every if r["status"] == s} for s in ("succeeded", "failed")}
    assert by_status["failed"] == {queued[0], queued[3], queued[6]}

    def ids(query, limit):
        runs = walk(api, f"{path}?{query}", "runs", limit, param="cursor")
        got = [r["id"] for r in runs]
        assert len(got) == len(set(got)), query  # none twice
        assert got == [r["id"] for r in every if r["id"] in set(got)], query  # newest first
        return set(got)

    assert ids("status=failed", 2) == by_status["failed"]
    assert ids("status=succeeded&trigger=manual", 4) == by_status["succeeded"] - {external}
    assert ids("trigger=external", 1) == {external}
    assert ids("status=failed,succeeded", 3) == set(queued + [external])
    assert ids("status=cancelled", 5) == set()
    # A time range over created_at: since <= created_at < until.
    at = every[4]["created_at"]
    assert ids(f"until={at}", 3) == {r["id"] for r in every if r["created_at"] < at}
    assert ids(f"since={at}", 3) == {r["id"] for r in every if r["created_at"] >= at}
    assert ids(f"since={at}&status=failed", 1) == {
        r["id"] for r in every if r["created_at"] >= at and r["status"] == "failed"}
    for bad, field, message in (
            ("status=lost", "status", '"lost" is not a run status (queued, running, retrying, '
                                      'succeeded, failed, cancelled, timed_out, missed, skipped; '
                                      'several separated by commas)'),
            ("status=", "status", "must name at least one status"),
            ("trigger=cron", "trigger", '"cron" is not one of manual, schedule, external'),
            ("since=soon", "since", "must be a time such as 2026-12-05T10:00:00Z"),
            (f"since={at}&until={at}", "until", "must be later than since")):
        status, doc, _ = api.get(f"{path}?{bad}")
        assert (status, doc["error"]["field"], doc["error"]["message"]) == (
            422, field, f"{field}: {message}"), bad
