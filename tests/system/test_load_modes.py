"""Load modes (append, replace, upsert), destination table creation from the
origin's types, and identifiers that try to escape their quotes."""
import sqlite3

import psycopg

from conftest import PG_ODBC
from datasets import QUERY, checksum, make_sqlite_origin, pg_checksum, sqlite_checksum


def make_job(api, origin_odbc, dest_odbc, table, query=QUERY, **load):
    src = api.create("/api/v1/connections", {"name": "o", "odbc": origin_odbc})
    dst = api.create("/api/v1/connections", {"name": "d", "odbc": dest_odbc})
    project = api.create("/api/v1/projects", {"name": "modes", "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      dict({"name": "j", "kind": "sql_transfer", "query": query,
                            "destination_table": table}, **load))


def run(api, job):
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, body
    return api.wait_run(body["run_id"])


def drop(pg, table):
    pg.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(table)))


def columns(pg, table):
    return pg.execute("SELECT column_name, data_type FROM information_schema.columns "
                      "WHERE table_name = %s ORDER BY ordinal_position", (table,)).fetchall()


def test_missing_table_is_created_from_origin_types(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    make_sqlite_origin(origin, 1500)
    drop(pg, "created_here")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "created_here")
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 1500), done
    assert columns(pg, "created_here") == [
        ("id", "integer"), ("qty", "bigint"), ("name", "text"),
        ("amount", "character varying"),  # the SQLite driver reports DECIMAL as VARCHAR(12)
        ("created_at", "timestamp without time zone"), ("note", "text")]
    assert pg_checksum(pg, "created_here") == sqlite_checksum(origin)


def test_first_runs_of_many_jobs_create_one_table(api, pg):
    """Eight jobs load one table that does not exist yet, their first runs at
    once: one creation wins, the others find the table made and load into
    it (PostgreSQL refuses concurrent creations, even IF NOT EXISTS ones).
    The ledger is made anew too: the same race on Convutell's own table."""
    drop(pg, "made_once")
    drop(pg, "convutell_ledger")
    query = "SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 50) g"
    jobs = [make_job(api, PG_ODBC, PG_ODBC, "made_once", query=query) for _ in range(8)]
    run_ids = []
    for job in jobs:
        status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, body
        run_ids.append(body["run_id"])
    runs = [api.wait_run(r) for r in run_ids]
    assert [(r["status"], r.get("error")) for r in runs] == [("succeeded", None)] * 8
    assert pg.execute("SELECT count(*), count(DISTINCT id) FROM made_once").fetchone() == (400, 50)
    drop(pg, "made_once")


def test_replace_twice_leaves_one_copy(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    make_sqlite_origin(origin, 800)
    drop(pg, "replaced")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "replaced", mode="replace")
    assert job["mode"] == "replace"
    assert run(api, job)["status"] == "succeeded"
    pg.execute("INSERT INTO replaced (id, name) VALUES (-5, 'stale')")
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 800)
    assert pg_checksum(pg, "replaced") == sqlite_checksum(origin)


def upsert_round(api, read_dest, origin, job):
    """Loads, changes the origin (updates and new rows), loads again: the
    destination must equal the origin, with no duplicate keys."""
    assert run(api, job)["status"] == "succeeded"
    con = sqlite3.connect(origin)
    con.execute("UPDATE accounts SET name = 'changed ' || id, qty = NULL WHERE id % 7 = 0")
    con.execute("INSERT INTO accounts (id, qty, name) VALUES (100001, 1, 'new'), (100002, 2, 'new')")
    con.commit()
    con.close()
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 1002), done
    assert read_dest() == sqlite_checksum(origin)


def test_upsert_into_postgresql(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    make_sqlite_origin(origin, 1000)
    drop(pg, "upserted")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "upserted",
                   mode="upsert", key=["id"])
    assert job["key"] == ["id"]
    upsert_round(api, lambda: pg_checksum(pg, "upserted"), origin, job)
    # The created table got the key as its primary key.
    assert pg.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                      "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                      "WHERE i.indrelid = 'upserted'::regclass AND i.indisprimary"
                      ).fetchall() == [("id",)]


def test_upsert_into_sqlite(api, tmp_path):
    origin = str(tmp_path / "o.db")
    dest = str(tmp_path / "d.db")
    make_sqlite_origin(origin, 1000)
    job = make_job(api, f"Driver=SQLite3;Database={origin}", f"Driver=SQLite3;Database={dest}",
                   "upserted", mode="upsert", key=["id"])

    def read_dest():
        con = sqlite3.connect(dest)
        try:
            return checksum(con.execute(QUERY.replace("accounts", "upserted")).fetchall())
        finally:
            con.close()
    upsert_round(api, read_dest, origin, job)


def test_load_fields_are_checked(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
    project = api.create("/api/v1/projects", {"name": "p", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    base = {"name": "j", "kind": "sql_transfer", "query": "SELECT 1 AS id", "destination_table": "t"}
    cases = [
        (dict(base, mode="merge"), "mode", 'mode: must be "append", "replace" or "upsert", not "merge"'),
        (dict(base, mode="upsert"), "key", 'key: is required with mode "upsert"'),
        (dict(base, key=["id"]), "key", 'key: is only used with mode "upsert"'),
        (dict(base, mode="upsert", key=["id", "id"]), "key", 'key: names column "id" twice'),
        (dict(base, mode="upsert", key=["a b"]), "key",
         "key: must hold column names (letters, digits, underscores)"),
        (dict(base, mode="upsert", key=[]), "key", "key: must be an array of 1 to 16 column names"),
    ]
    for body, field, message in cases:
        status, answer, _ = api.post(f"/api/v1/projects/{project['id']}/jobs", body)
        assert (status, answer["error"]) == (422, {"code": "invalid_field", "field": field,
                                                   "message": message})


def test_hostile_column_names_stay_quoted(api, pg, tmp_path):
    """Column names come from the origin's result: they are quoted, never run."""
    origin = str(tmp_path / "o.db")
    make_sqlite_origin(origin, 10)
    drop(pg, "hostile")
    pg.execute("CREATE TABLE IF NOT EXISTS canary (x int)")
    query = ('SELECT id AS "a""b; DROP TABLE canary; --", name AS "x\'); DELETE FROM canary; --" '
             "FROM accounts")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "hostile", query=query)
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 10), done
    assert [c for c, _ in columns(pg, "hostile")] == [
        'a"b; DROP TABLE canary; --', "x'); DELETE FROM canary; --"]
    assert pg.execute("SELECT to_regclass('canary') IS NOT NULL").fetchone() == (True,)
