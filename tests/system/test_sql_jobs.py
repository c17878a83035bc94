"""Jobs of kind sql: statements run in one transaction on the project's origin
or destination connection, each statement's row count in the run's log, their
sum in rows_written, and nothing left behind when one of them fails."""
import time

from conftest import MARIADB_ODBC, PG_ODBC, deliver_again, milestones
from test_load_modes import run
from test_matrix import Side


def sql_job(api, statements, origin=PG_ODBC, destination=PG_ODBC, **extra):
    src = api.create("/api/v1/connections", {"name": "o", "odbc": origin})
    dst = api.create("/api/v1/connections", {"name": "d", "odbc": destination})
    project = api.create("/api/v1/projects", {"name": "sql", "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      dict({"name": "maintenance", "kind": "sql", "statements": statements},
                           **extra))


def log_lines(mongo_db, run_id, count):
    deadline = time.time() + 30
    while mongo_db.events.count_documents({"run_id": run_id, "type": "run.log"}) < count:
        assert time.time() < deadline
        time.sleep(0.1)
    return sorted(e["line"] for e in mongo_db.events.find({"run_id": run_id, "type": "run.log"}))


def test_statements_run_in_one_transaction(api, pg, mongo_db):
    pg.execute("DROP TABLE IF EXISTS sj")
    job = sql_job(api, "CREATE TABLE sj (id int, note text);\n"
                       "INSERT INTO sj SELECT g, 'a;b' FROM generate_series(1, 3) g; -- three;\n"
                       "UPDATE sj SET note = 'it''s' WHERE id <= 2;")
    assert (job["kind"], job["connection"]) == ("sql", "destination")
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 5), done
    assert log_lines(mongo_db, done["id"], 3) == [
        "statement 1: 0 rows", "statement 2: 3 rows", "statement 3: 2 rows"]
    assert pg.execute("SELECT id, note FROM sj ORDER BY id").fetchall() == [
        (1, "it's"), (2, "it's"), (3, "a;b")]

    done = run(api, sql_job(api, "INSERT INTO sj VALUES (9, 'x');\nSELECT * FROM sj_missing"))
    assert (done["status"], done["error"]["code"]) == ("failed", "statement_failed"), done
    assert done["error"]["message"].startswith("statement 2 failed: 42P01: "), done
    assert "sj_missing" in done["error"]["message"]
    assert pg.execute("SELECT count(*) FROM sj WHERE id = 9").fetchone() == (0,)


def test_mariadb_origin_connection(api, mongo_db, tmp_path):
    maria = Side("mariadb", tmp_path)
    maria.drop("sj_maria")
    maria.execute("CREATE TABLE sj_maria (note varchar(50))")
    job = sql_job(api, "INSERT INTO sj_maria VALUES ('it\\'s; fine'), ('x'); # not a statement;\n"
                       "DELETE FROM sj_maria WHERE note = 'x'",
                  origin=MARIADB_ODBC, connection="origin")
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 3), done
    assert log_lines(mongo_db, done["id"], 2) == ["statement 1: 2 rows", "statement 2: 1 rows"]
    assert maria.execute("SELECT note FROM sj_maria") == (("it's; fine",),)


def test_sql_job_fields_are_checked(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "sql", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    path = f"/api/v1/projects/{project['id']}/jobs"
    for body, field, message in [
        ({"name": "s", "kind": "sql"}, "statements", "statements: is required"),
        ({"name": "s", "kind": "sql", "statements": ""}, "statements",
         "statements: must not be empty"),
        ({"name": "s", "kind": "sql", "statements": "SELECT 1", "connection": "middle"},
         "connection", 'connection: must be "origin" or "destination", not "middle"'),
    ]:
        status, answer, _ = api.post(path, body)
        assert (status, answer) == (422, {"error": {"code": "invalid_field", "field": field,
                                                    "message": message}}), body


def test_finished_attempt_keeps_its_lease_and_a_second_delivery_runs_nothing(
        api, pg, mongo_db, services):
    """An attempt that ended for good leaves its lease held (no release write);
    the run's final record is what a later delivery of the same message is
    checked against, so the statements do not run twice."""
    pg.execute("DROP TABLE IF EXISTS sj_once")
    pg.execute("CREATE TABLE sj_once (at timestamptz)")
    job = sql_job(api, "INSERT INTO sj_once VALUES (clock_timestamp())")
    done = run(api, job)
    assert done["status"] == "succeeded", done
    run_id = done["id"]
    lease = list(mongo_db.leases.find({"_id": run_id}).limit(1))
    assert [(x["state"], x["attempt"]) for x in lease] == [("held", 1)]

    deliver_again(services, run_id)
    assert pg.execute("SELECT count(*) FROM sj_once").fetchone() == (1,)
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run_id)))
    assert types == ["run.log", "run.queued", "run.started", "run.succeeded"]
    assert api.get(f"/api/v1/runs/{run_id}")[1]["status"] == "succeeded"
