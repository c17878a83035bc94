"""The SQL console: one statement run on a project's origin or destination by
a worker (a `query` job on convutell.queries, never by the API), answered
when it ends; read-only unless an editor allows writes; a time limit; a
cancel; results truncated at max_rows; CSV and JSON Lines downloads."""
import csv
import io
import json
import sqlite3
import time
import urllib.request

import pytest

from conftest import MARIADB_ODBC, PG_ODBC, bearer
from test_rights import forbidden, name, person


def make_console(client, origin=PG_ODBC, destination=PG_ODBC):
    o = client.create("/api/v1/connections", {"name": "o", "odbc": origin})
    d = client.create("/api/v1/connections", {"name": "d", "odbc": destination})
    return client.create("/api/v1/projects", {"name": name("console"),
                                              "origin_connection_id": o["id"],
                                              "destination_connection_id": d["id"]})


def run(client, project, sql, side="origin", **extra):
    status, body, headers = client.post(f"/api/v1/projects/{project['id']}/queries/run",
                                        dict({"connection": side, "sql": sql}, **extra))
    return status, body, headers


def ran(client, project, sql, **extra):
    status, body, _ = run(client, project, sql, **extra)
    assert status == 200, body
    return body


def wait_final(client, run_id, timeout=30):
    deadline = time.time() + timeout
    while True:
        status, body, _ = client.get(f"/api/v1/query-runs/{run_id}")
        if status == 200:
            return body
        assert status == 202 and time.time() < deadline, body
        time.sleep(0.1)


def download(client, run_id, fmt):
    req = urllib.request.Request(f"{client.base}/api/v1/query-runs/{run_id}/rows?format={fmt}",
                                 headers=bearer(client.token))
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, dict(resp.headers), resp.read().decode()


@pytest.fixture(scope="module")
def team(api):
    """An owner's project on PostgreSQL, and a runner, an editor and a viewer of it."""
    owner, owner_api = person(api, "cown")
    project = make_console(owner_api)
    owner_api.name = owner
    users = {"owner": owner_api}
    for role in ("runner", "editor", "viewer"):
        user, client = person(api, role[:3])
        owner_api.create(f"/api/v1/projects/{project['id']}/members", {"user": user, "role": role})
        users[role] = client
        client.name = user
    users["stranger"] = person(api, "cstr")[1]
    return project, users


def test_select_answers_columns_rows_and_time(team):
    project, users = team
    body = ran(users["runner"], project,
               "SELECT 1 AS one, 'a,b' AS t, NULL::integer AS n, 12.50::numeric(6,2) AS amount, "
               "9007199254740993::bigint AS big")
    assert body["status"] == "succeeded", body
    assert [(c["name"], c["type"]) for c in body["columns"]] == [
        ("one", "integer"), ("t", "text"), ("n", "integer"), ("amount", "numeric"),
        ("big", "bigint")]
    # Integers past 2^53 come as text: JSON readers would lose their last digit.
    assert body["rows"] == [[1, "a,b", None, "12.50", "9007199254740993"]]
    assert (body["row_count"], body["truncated"], body["connection"]) == (1, False, "origin")
    assert 0 <= body["elapsed_ms"] < 10000
    assert body["created_by"] == users["runner"].name


def test_parameters_are_bound_not_pasted(team):
    project, users = team
    body = ran(users["runner"], project, "SELECT CAST(? AS integer) + 1 AS n, ? AS s, ? AS z",
               params=[41, "O'Brien; DROP TABLE x", None])
    assert body["rows"] == [[42, "O'Brien; DROP TABLE x", None]], body


def test_reads_only_unless_an_editor_allows_writes(team, pg):
    project, users = team
    pg.execute("DROP TABLE IF EXISTS console_w")
    pg.execute("CREATE TABLE console_w (id integer)")
    body = ran(users["runner"], project, "INSERT INTO console_w VALUES (1)")
    assert body["status"] == "failed" and body["error"]["code"] == "read_only", body
    assert "read-only transaction" in body["error"]["message"]
    # A read-only statement that writes through a function is refused too.
    pg.execute("CREATE SEQUENCE IF NOT EXISTS console_seq")
    body = ran(users["editor"], project, "SELECT nextval('console_seq')")
    assert (body["status"], body["error"]["code"]) == ("failed", "read_only"), body
    status, body, _ = run(users["runner"], project, "INSERT INTO console_w VALUES (1)",
                          allow_writes=True)
    assert (status, body) == (403, forbidden("editor", project["id"], "runner"))
    body = ran(users["editor"], project, "INSERT INTO console_w VALUES (1), (2)",
               allow_writes=True)
    assert (body["status"], body["rows_affected"], body["columns"]) == ("succeeded", 2, []), body
    assert pg.execute("SELECT count(*) FROM console_w").fetchone() == (2,)
    pg.execute("DROP TABLE console_w")
    pg.execute("DROP SEQUENCE console_seq")


def test_sqlite_and_mariadb_read_only_too(api, tmp_path):
    db = tmp_path / "console.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER)")
    project = make_console(api, origin=f"Driver=SQLite3;Database={db}", destination=MARIADB_ODBC)
    body = ran(api, project, "INSERT INTO t VALUES (1)")
    assert (body["status"], body["error"]["code"]) == ("failed", "read_only"), body
    body = ran(api, project, "SELECT count(*) AS n FROM t")
    assert body["rows"] == [[0]], body
    # The connection went back to the pool writable again: an allowed write works.
    body = ran(api, project, "INSERT INTO t VALUES (7)", allow_writes=True)
    assert (body["status"], body["rows_affected"]) == ("succeeded", 1), body
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT id FROM t").fetchall() == [(7,)]
    body = ran(api, project, "CREATE TABLE console_m (id INT)", side="destination")
    assert (body["status"], body["error"]["code"]) == ("failed", "read_only"), body
    body = ran(api, project, "SELECT 40 + 2 AS n", side="destination")
    assert body["rows"] == [[42]], body


def test_time_limit_is_enforced(api, tmp_path):
    project = make_console(api, destination=f"Driver=SQLite3;Database={tmp_path / 'slow.db'}")
    started = time.time()
    body = ran(api, project, "SELECT pg_sleep(20)", timeout_seconds=1)
    assert (body["status"], body["error"]["code"]) == ("timed_out", "timed_out"), body
    # SQLite has no time limit of its own: the worker cancels the statement.
    body = ran(api, project, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                             "SELECT count(*) FROM c", side="destination", timeout_seconds=1)
    assert (body["status"], body["error"]["code"]) == ("timed_out", "timed_out"), body
    assert time.time() - started < 15


def test_cancel_while_it_runs(team):
    project, users = team
    status, body, headers = run(users["runner"], project, "SELECT pg_sleep(30)", wait_seconds=0)
    assert status == 202 and body["status"] in ("queued", "running"), body
    assert headers["Location"] == f"/api/v1/query-runs/{body['id']}"
    deadline = time.time() + 10
    while users["runner"].get(f"/api/v1/query-runs/{body['id']}")[1]["status"] == "queued":
        assert time.time() < deadline
        time.sleep(0.05)
    status, cancel, _ = users["runner"].post(f"/api/v1/query-runs/{body['id']}/cancel")
    assert (status, cancel["status"]) == (202, "cancelling"), cancel
    done = wait_final(users["runner"], body["id"], timeout=15)
    assert (done["status"], done["error"]) == (
        "cancelled", {"code": "cancelled", "message": "cancelled on request"}), done
    status, again, _ = users["runner"].post(f"/api/v1/query-runs/{body['id']}/cancel")
    assert (status, again["error"]["code"]) == (409, "conflict")


def test_results_are_truncated_at_max_rows(team):
    project, users = team
    body = ran(users["runner"], project, "SELECT g FROM generate_series(1, 2500) g ORDER BY g",
               max_rows=2100)
    assert (body["row_count"], body["truncated"]) == (2100, True)
    assert body["rows"] == [[g] for g in range(1, 2101)]
    body = ran(users["runner"], project, "SELECT g FROM generate_series(1, 5) g ORDER BY g",
               max_rows=5)
    assert (body["row_count"], body["truncated"], body["rows"]) == (5, False, [[1], [2], [3],
                                                                               [4], [5]])


def test_csv_and_jsonl_of_100000_rows(team, pg):
    project, users = team
    query = ("SELECT g AS id, CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 "
             "THEN 'say \"hi\", ' || g || E'\\nbye' ELSE md5(g::text) END AS label, "
             "(g * 1.25)::numeric(12,2) AS amount FROM generate_series(1, 100000) g ORDER BY g")
    body = ran(users["runner"], project, query, max_rows=100000, wait_seconds=25,
               timeout_seconds=120)
    assert (body["status"], body["row_count"], body["truncated"]) == ("succeeded", 100000, False)
    expected = [(str(i), "" if label is None else label, str(amount))
                for i, label, amount in pg.execute(query).fetchall()]
    status, headers, text = download(users["runner"], body["id"], "csv")
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert headers["Content-Disposition"] == f'attachment; filename="query-{body["id"]}.csv"'
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "label", "amount"]
    assert [tuple(r) for r in rows[1:]] == expected
    status, headers, text = download(users["runner"], body["id"], "jsonl")
    assert headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 100000
    assert [(str(r["id"]), r["label"] or "", r["amount"]) for r in lines] == expected
    # The answer itself holds the same rows.
    assert [(str(a), "" if b is None else b, c) for a, b, c in body["rows"]] == expected


def test_bad_requests_name_the_field(team):
    project, users = team
    path = f"/api/v1/projects/{project['id']}/queries/run"
    cases = [
        ({"sql": "SELECT 1"}, "connection", "is required"),
        ({"connection": "middle", "sql": "SELECT 1"}, "connection",
         'must be "origin", "destination" or the id of one of the project\'s connections, '
         'not "middle"'),
        ({"connection": "origin"}, "sql", "is required"),
        ({"connection": "origin", "sql": "SELECT 1; SELECT 2"}, "sql",
         "must be one statement (the console runs one at a time; a sql job runs several)"),
        ({"connection": "origin", "sql": "SELECT 1", "max_rows": 0}, "max_rows",
         "must be between 1 and 1000000"),
        ({"connection": "origin", "sql": "SELECT 1", "timeout_seconds": 301}, "timeout_seconds",
         "must be between 1 and 300"),
        ({"connection": "origin", "sql": "SELECT ?", "params": {"a": 1}}, "params",
         "must be an array of values, one per ? in sql"),
        ({"connection": "origin", "sql": "SELECT ?", "params": [[1]]}, "params[0]",
         "must be a string, a number, true, false or null"),
        ({"connection": "origin", "sql": "SELECT 1", "rows": 5}, "rows",
         "is not a field of a console query"),
    ]
    for body, field, message in cases:
        status, got, _ = users["runner"].post(path, body)
        assert status == 422, (body, got)
        assert got["error"]["field"] == field, (body, got)
        assert got["error"]["message"].endswith(message), (body, got)
    # Who may: a viewer reads definitions, not data.
    status, got, _ = users["viewer"].post(path, {"connection": "origin", "sql": "SELECT 1"})
    assert (status, got) == (403, forbidden("runner", project["id"], "viewer"))
    body = ran(users["runner"], project, "SELECT 1")
    for client, code in ((users["stranger"], 404), (users["viewer"], 403), (users["owner"], 200)):
        assert client.get(f"/api/v1/query-runs/{body['id']}")[0] == code
    status, got, _ = users["stranger"].get(f"/api/v1/query-runs/{body['id']}")
    assert got == {"error": {"code": "not_found",
                             "message": f"no query run with id '{body['id']}'"}}


def test_any_connection_of_the_project_by_id_and_no_other(team, api, tmp_path):
    project, users = team
    db = tmp_path / "third.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (x INTEGER)")
        c.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(7)])
    third = users["editor"].create("/api/v1/connections", {
        "name": "third", "odbc": f"Driver=SQLite3;Database={db}", "project_id": project["id"]})
    body = ran(users["runner"], project, "SELECT count(*) FROM t", side=third["id"])
    assert (body["rows"], body["connection"]) == ([[7]], third["id"])
    ends = [project["origin_connection_id"], project["destination_connection_id"]]
    assert ran(users["runner"], project, "SELECT 2", side=ends[1])["rows"] == [[2]]
    # Another project's connection, and one that does not exist, read the same.
    other = make_console(person(api, "coth")[1])
    for conn_id in (other["origin_connection_id"], "00000000-0000-4000-8000-000000000000"):
        status, got, _ = run(users["owner"], project, "SELECT 1", side=conn_id)
        assert (status, got) == (422, {"error": {
            "code": "invalid_field", "field": "connection",
            "message": f"connection: project {project['id']} has no connection '{conn_id}'"}}), got


def test_query_is_not_a_kind_of_stored_job(team):
    project, users = team
    status, got, _ = users["editor"].post(f"/api/v1/projects/{project['id']}/jobs",
                                          {"name": "q", "kind": "query", "statements": "SELECT 1"})
    assert (status, got["error"]["field"]) == (422, "kind"), got


def test_saved_queries_run_change_and_become_jobs(team, pg):
    project, users = team
    editor, runner = users["editor"], users["runner"]
    path = f"/api/v1/projects/{project['id']}/queries"
    status, got, _ = editor.post(path, {"name": "n", "sql": "SELECT 1", "connection": "side"})
    assert (status, got["error"]["field"]) == (422, "connection"), got
    status, got, _ = runner.post(path, {"name": "n", "sql": "SELECT 1", "connection": "origin"})
    assert (status, got) == (403, forbidden("editor", project["id"], "runner"))
    saved = editor.create(path, {"name": "Top labels", "connection": "origin",
                                 "sql": "SELECT g AS id, md5(g::text) AS label "
                                        "FROM generate_series(1, CAST(? AS integer)) g",
                                 "description": "the first labels"})
    assert (saved["created_by"], saved["updated_by"]) == (editor.name, editor.name)
    other = editor.create(path, {"name": "other", "sql": "SELECT 2", "connection": "destination"})
    listed = users["viewer"].get(path + "?q=TOP")[1]
    assert [q["id"] for q in listed["queries"]] == [saved["id"]]
    assert [q["id"] for q in users["viewer"].get(path)[1]["queries"]] == [saved["id"], other["id"]]
    # Run as saved, with the request's own parameters and limits.
    status, ran_saved, _ = runner.post(f"/api/v1/queries/{saved['id']}/run",
                                       {"params": [3], "max_rows": 2})
    assert status == 200, ran_saved
    assert (ran_saved["rows"], ran_saved["truncated"]) == (
        [[1, pg.execute("SELECT md5('1')").fetchone()[0]],
         [2, pg.execute("SELECT md5('2')").fetchone()[0]]], True)
    # Changed with the version read (If-Match), by someone else: updated_by follows.
    status, doc, headers = users["owner"].get(f"/api/v1/queries/{saved['id']}")
    etag = headers["ETag"]
    status, changed, _ = users["owner"].call("PATCH", f"/api/v1/queries/{saved['id']}",
                                             {"description": None, "name": "Labels"},
                                             headers={"If-Match": etag})
    assert status == 200, changed
    assert (changed["name"], changed["updated_by"], "description" in changed) == (
        "Labels", users["owner"].name, False)
    status, stale, _ = editor.call("PATCH", f"/api/v1/queries/{saved['id']}", {"name": "x"},
                                   headers={"If-Match": etag})
    assert (status, stale["error"]["code"]) == (412, "precondition_failed"), stale
    status, bad, _ = editor.call("PATCH", f"/api/v1/queries/{saved['id']}", {"rows": 1})
    assert (status, bad["error"]["field"]) == (422, "rows"), bad
    # A job in one call: a sql job on the saved side, or a transfer of its rows.
    sql_job = editor.create(f"/api/v1/queries/{other['id']}/job", {})
    assert (sql_job["kind"], sql_job["statements"], sql_job["connection"], sql_job["name"]) == (
        "sql", "SELECT 2", "destination", "other")
    fixed = editor.create(path, {"name": "ten", "connection": "origin",
                                 "sql": "SELECT g AS id FROM generate_series(1, 10) g"})
    pg.execute("DROP TABLE IF EXISTS from_saved")
    transfer = editor.create(f"/api/v1/queries/{fixed['id']}/job",
                             {"destination_table": "from_saved", "name": "copy ten"})
    assert (transfer["kind"], transfer["query"], transfer["name"]) == (
        "sql_transfer", fixed["sql"], "copy ten")
    status, started, _ = runner.post(f"/api/v1/jobs/{transfer['id']}/runs")
    assert runner.wait_run(started["run_id"])["status"] == "succeeded"
    assert pg.execute("SELECT sum(id), count(*) FROM from_saved").fetchone() == (55, 10)
    pg.execute("DROP TABLE from_saved")
    # Deleted: gone for everyone.
    assert editor.call("DELETE", f"/api/v1/queries/{saved['id']}")[0] == 204
    assert users["owner"].get(f"/api/v1/queries/{saved['id']}")[0] == 404
    assert [q["id"] for q in users["viewer"].get(path)[1]["queries"]] == [other["id"],
                                                                           fixed["id"]]
