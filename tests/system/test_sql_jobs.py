"""Jobs of kind sql: statements run in one transaction on the project's origin
or destination connection, each statement's row count in the run's log, their
sum in rows_written, and nothing left behind when one of them fails."""
import os
import sqlite3
import time

from conftest import MARIADB_ODBC, PG_ODBC, PG_PORT, deliver_again, milestones
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


def wait_lease_done(mongo_db, run_id, timeout=10):
    deadline = time.time() + timeout
    while True:
        lease = mongo_db.leases.find_one({"_id": run_id})
        if lease and lease["state"] == "done":
            return lease
        assert time.time() < deadline, lease
        time.sleep(0.1)


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


def test_finished_attempt_marks_its_lease_done_and_a_second_delivery_runs_nothing(
        api, pg, mongo_db, services):
    """An attempt that ended for good has its lease marked done, in a batch
    of a fraction of a second; a later delivery of the same message is
    checked against it and the run's record, so the statements do not run
    twice."""
    pg.execute("DROP TABLE IF EXISTS sj_once")
    pg.execute("CREATE TABLE sj_once (at timestamptz)")
    job = sql_job(api, "INSERT INTO sj_once VALUES (clock_timestamp())")
    done = run(api, job)
    assert done["status"] == "succeeded", done
    run_id = done["id"]
    lease = wait_lease_done(mongo_db, run_id)
    assert (lease["state"], lease["attempt"], lease["ended"]) == ("done", 1, True), lease

    deliver_again(services, run_id)
    assert pg.execute("SELECT count(*) FROM sj_once").fetchone() == (1,)
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run_id)))
    assert types == ["run.log", "run.queued", "run.started", "run.succeeded"]
    assert api.get(f"/api/v1/runs/{run_id}")[1]["status"] == "succeeded"


def test_kept_connection_starts_clean_on_postgresql(api, pg, mongo_db):
    """A worker keeps the connection of a sql job for the next job of the same
    connection, reset as a new one: the second job runs in the same server
    process, without the first one's temporary table or session setting, and
    with the settings the driver and the connection string gave the session."""
    pg.execute("DROP TABLE IF EXISTS pool_probe")
    pg.execute("CREATE TABLE pool_probe (job text, pid int, search_path text, temps bigint, "
               "app text, session text)")
    probe = ("INSERT INTO public.pool_probe SELECT '{0}', pg_backend_pid(), "
             "current_setting('search_path'), (SELECT count(*) FROM pg_class "
             "WHERE relpersistence = 't' AND pg_table_is_visible(oid)), "
             "current_setting('application_name'), (SELECT string_agg(name || '=' || setting, "
             "',' ORDER BY name) FROM pg_settings WHERE source = 'session')")
    # A connection string of this test's own: no connection kept from before.
    odbc = PG_ODBC + ";Pqopt={application_name=pool_probe}"
    first = sql_job(api, probe.format("1 fresh") + ";\n"
                         "CREATE TEMP TABLE scratch (x int);\n"
                         "SET search_path TO pg_temp, public;\n" + probe.format("2 changed"),
                    destination=odbc)
    done = run(api, first)
    assert done["status"] == "succeeded", done
    again = api.create(f"/api/v1/projects/{first['project_id']}/jobs",
                       {"name": "again", "kind": "sql", "statements": probe.format("3 kept")})
    # The same connection id: the same connection string, so the kept connection.
    done = run(api, again)
    assert done["status"] == "succeeded", done
    rows = pg.execute("SELECT job, pid, search_path, temps, app, session FROM pool_probe "
                      "ORDER BY job").fetchall()
    fresh, changed, kept = rows
    assert (changed[2], changed[3]) == ("pg_temp, public", 1), changed
    assert "search_path=" in changed[5]
    assert fresh[4] == "pool_probe" and fresh[3] == 0
    assert kept[2:] == fresh[2:], (fresh, kept)
    assert kept[1] == fresh[1], "the second job did not reuse the first one's connection"

    # A failed job's connection is rolled back and kept too.
    done = run(api, api.create(f"/api/v1/projects/{first['project_id']}/jobs",
                               {"name": "fails", "kind": "sql",
                                "statements": probe.format("4 failed") + ";\nSELECT 1/0"}))
    assert (done["status"], done["error"]["code"]) == ("failed", "statement_failed"), done
    done = run(api, again)
    assert done["status"] == "succeeded", done
    assert pg.execute("SELECT job FROM pool_probe ORDER BY job").fetchall() == [
        ("1 fresh",), ("2 changed",), ("3 kept",), ("3 kept",)]
    assert pg.execute("SELECT count(DISTINCT pid) FROM pool_probe").fetchone() == (1,)

    # The server ended the kept connection while it waited: the next job gets
    # a new one instead of failing.
    pid = kept[1]
    assert pg.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    done = run(api, again)
    assert done["status"] == "succeeded", done
    pids = pg.execute("SELECT pid FROM pool_probe ORDER BY ctid").fetchall()
    assert len(pids) == 4 + 1 and pids[-1][0] != pid, pids


def test_sqlite_connection_with_session_state_is_not_kept(api, tmp_path):
    """On SQLite, a connection left with a temporary table or changed by a
    PRAGMA is closed rather than kept: the next job sees a new one."""
    db = tmp_path / "pool.db"
    sqlite3.connect(db).close()
    odbc = f"Driver=SQLite3;Database={db}"
    temp = sql_job(api, "CREATE TEMP TABLE scratch (x int);\nINSERT INTO scratch VALUES (1)",
                   origin=odbc, destination=odbc)
    for _ in range(2):  # a kept connection would still hold the table: "already exists"
        done = run(api, temp)
        assert done["status"] == "succeeded", done
        assert done["rows_written"] == 1, done

    project = temp["project_id"]
    pragma = api.create(f"/api/v1/projects/{project}/jobs",
                        {"name": "pragma", "kind": "sql", "statements": "PRAGMA cache_size = 1234"})
    read = api.create(f"/api/v1/projects/{project}/jobs",
                      {"name": "read", "kind": "sql",
                       "statements": "CREATE TABLE IF NOT EXISTS seen (size int);\n"
                                     "INSERT INTO seen SELECT cache_size FROM pragma_cache_size"})
    assert run(api, pragma)["status"] == "succeeded"
    assert run(api, read)["status"] == "succeeded"
    with sqlite3.connect(db) as c:
        default = c.execute("PRAGMA cache_size").fetchone()[0]
        assert c.execute("SELECT size FROM seen").fetchall() == [(default,)]
    assert default != 1234


def test_connection_does_not_borrow_the_services_credentials(api):
    """The services run with the stack's PGUSER and PGPASSWORD in their
    environment (make run exports them, and so do the tests); a connection
    string without credentials does not connect with them."""
    assert os.environ.get("PGUSER") and os.environ.get("PGPASSWORD")
    bare = f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={PG_PORT};Database=convutell"
    done = run(api, sql_job(api, "SELECT 1", origin=bare, destination=bare))
    assert (done["status"], done["error"]["code"]) == ("failed", "connect"), done
    done = run(api, sql_job(api, "SELECT 1"))  # the same server, with its credentials
    assert done["status"] == "succeeded", done


def test_delivered_again_to_another_worker_while_the_collector_is_behind(
        api, pg, mongo_db, services):
    """The collector is stopped, so the run's record is not final when the
    same message reaches a new worker process: the lease, marked done by the
    worker that ran it, is what keeps the new one from taking the attempt
    over once the lease's time has run out and running it again."""
    pg.execute("DROP TABLE IF EXISTS sj_twice")
    pg.execute("CREATE TABLE sj_twice (at timestamptz)")
    job = sql_job(api, "INSERT INTO sj_twice VALUES (clock_timestamp())")
    assert services.stop("collector") == 0
    try:
        status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, body
        run_id = body["run_id"]
        deadline = time.time() + 60
        while pg.execute("SELECT count(*) FROM sj_twice").fetchone() != (1,):
            assert time.time() < deadline
            time.sleep(0.1)
        wait_lease_done(mongo_db, run_id)
        assert services.stop("worker") == 0
        services.start("worker")
        deliver_again(services, run_id)
        time.sleep(int(services.env["CONVUTELL_LEASE_SECONDS"]) + 2)
        assert pg.execute("SELECT count(*) FROM sj_twice").fetchone() == (1,)
    finally:
        services.start("collector")
    assert api.wait_run(run_id)["status"] == "succeeded"
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run_id)))
    assert types == ["run.log", "run.queued", "run.started", "run.succeeded"]
    assert pg.execute("SELECT count(*) FROM sj_twice").fetchone() == (1,)
