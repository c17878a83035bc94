"""A transfer's query reads the origin and nothing else: it runs in a
read-only session (PostgreSQL's default transaction mode, MariaDB's session
transaction mode, SQLite's query_only), and a query of more than one
statement is refused, by the API and by the worker alike (for a job stored
before the API checked, or edited in the store), so no text in a job can
change the origin. Job messages carry no query at all (test_forged_jobs.py)."""
import pytest

from conftest import PG_ODBC
from test_load_modes import run
from test_matrix import Side

WRITES = [
    "DELETE FROM precious",
    "WITH gone AS (DELETE FROM precious RETURNING id) SELECT id FROM gone",
]


def transfer(api, origin_odbc, query):
    src = api.create("/api/v1/connections", {"name": "origin", "odbc": origin_odbc})
    dst = api.create("/api/v1/connections", {"name": "dest", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "ro", "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    # load_method insert: the rows come over ODBC, by the query as it is
    # written (COPY and LOAD DATA first describe it inside a subquery, where
    # a DELETE is a syntax error anyway).
    return project, api.create(f"/api/v1/projects/{project['id']}/jobs",
                               {"name": "copy", "kind": "sql_transfer", "query": query,
                                "destination_table": "precious_copy", "load_method": "insert"})


@pytest.mark.parametrize("kind", ["postgres", "mariadb", "sqlite"])
def test_a_query_that_writes_fails_and_changes_nothing(api, tmp_path, kind):
    origin = Side(kind, tmp_path)
    origin.drop("precious")
    origin.execute("CREATE TABLE precious (id int)")
    origin.execute("INSERT INTO precious VALUES (1), (2), (3)")
    Side("postgres", tmp_path).drop("precious_copy")
    Side("postgres", tmp_path).execute("CREATE TABLE precious_copy (id int)")
    queries = WRITES if kind != "mariadb" else WRITES[:1]  # MariaDB has no DELETE in a CTE
    for query in queries:
        done = run(api, transfer(api, origin.odbc, query)[1])
        assert (done["status"], done["error"]["code"]) == ("failed", "origin_query"), done
        if query == WRITES[0]:  # the other one fails to parse on SQLite, or as a cursor
            assert "read" in done["error"]["message"].lower(), done  # read-only, readonly
        assert origin.execute("SELECT count(*) FROM precious")[0][0] == 3, query
    # A query that reads still runs.
    done = run(api, transfer(api, origin.odbc, "SELECT id FROM precious")[1])
    assert (done["status"], done["rows_written"]) == ("succeeded", 3), done


def test_more_than_one_statement_is_refused(api, mongo_db, tmp_path):
    origin = Side("postgres", tmp_path)
    origin.drop("precious")
    origin.execute("CREATE TABLE precious (id int)")
    origin.execute("INSERT INTO precious VALUES (1), (2), (3)")
    query = "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; DELETE FROM precious"
    src = api.create("/api/v1/connections", {"name": "origin", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "ro", "origin_connection_id": src["id"],
                                              "destination_connection_id": src["id"]})
    status, body, _ = api.post(f"/api/v1/projects/{project['id']}/jobs",
                               {"name": "copy", "kind": "sql_transfer", "query": query,
                                "destination_table": "precious_copy"})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "query",
        "message": "query: must be one statement (a SELECT); it runs read-only on the origin"}})
    # A semicolon inside a literal is not a second statement.
    _, job = transfer(api, PG_ODBC, "SELECT id FROM precious WHERE 'a;b' <> ''")

    # Written into the stored job past the API: the worker refuses it too.
    mongo_db.jobs.update_one({"_id": job["id"]}, {"$set": {"query": query}})
    done = run(api, job)
    assert (done["status"], done["error"]["code"]) == ("failed", "origin_query"), done
    assert done["error"]["message"] == "the query must be one statement; it has 2", done
    assert origin.execute("SELECT count(*) FROM precious")[0][0] == 3
