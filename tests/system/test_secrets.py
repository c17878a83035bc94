"""Secrets: connection strings are sealed at rest and never shown whole, and the
key that seals them can be rotated (`convutell admin rotate-secrets`) while the
jobs keep running. A canary password, used for real by a database role, appears
in no MongoDB document, no Kafka message, no service log and no API answer
(conftest checks every answer and log of the session too)."""
import json
import os
import subprocess

import psycopg
import pytest

from conftest import BIN, CANARY, PG_PORT, kcat

CANARY_ODBC = (f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={PG_PORT};"
               f"Database=convutell;UID=cv_canary;PWD={CANARY}")
TOPICS = ("convutell.jobs", "convutell.events", "convutell.jobs.dlq", "convutell.jobs.retry",
          "convutell.queries", "convutell.replies")


@pytest.fixture(scope="module")
def canary_role():
    with psycopg.connect(f"host=127.0.0.1 port={PG_PORT} user=convutell password=convutell "
                         "dbname=convutell", autocommit=True) as pg:
        pg.execute("DROP TABLE IF EXISTS canary_src, canary_dst")
        pg.execute("DROP ROLE IF EXISTS cv_canary")
        pg.execute(psycopg.sql.SQL("CREATE ROLE cv_canary LOGIN PASSWORD {}").format(
            psycopg.sql.Literal(CANARY)))
        pg.execute("CREATE TABLE canary_src AS SELECT n, md5(n::text) AS h "
                   "FROM generate_series(1, 500) n")
        pg.execute("CREATE TABLE canary_dst (n int, h text)")
        pg.execute("ALTER TABLE canary_dst OWNER TO cv_canary")
        # What a transfer's destination user needs: its ledger and checkpoints too.
        pg.execute("GRANT USAGE, CREATE ON SCHEMA public TO cv_canary")
        pg.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO cv_canary")
        yield pg


def project_with(api, odbc):
    conn = api.create("/api/v1/connections", {"name": "canary", "odbc": odbc})
    project = api.create("/api/v1/projects", {"name": "canary", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    return conn, project


def transfer(api, project):
    return api.create(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "canary", "kind": "sql_transfer", "query": "SELECT n, h FROM canary_src",
        "destination_table": "canary_dst", "mode": "replace"})


def run(api, job):
    status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, queued
    return api.wait_run(queued["run_id"])


def test_the_canary_password_is_nowhere(api, services, mongo_db, canary_role):
    conn, project = project_with(api, CANARY_ODBC)
    assert conn["odbc"] == CANARY_ODBC.replace(CANARY, "********")
    assert "odbc_sealed" not in conn
    done = run(api, transfer(api, project))
    assert (done["status"], done["rows_written"]) == ("succeeded", 500), done
    assert canary_role.execute("SELECT count(*), sum(n) FROM canary_dst").fetchone() == (500, 125250)
    # A wrong password (the canary and more) fails the run, and is not in its error.
    _, bad = project_with(api, CANARY_ODBC.replace(CANARY, CANARY + "-wrong"))
    failed = run(api, transfer(api, bad))
    assert failed["status"] == "failed"
    assert "password authentication failed" in failed["error"]["message"]

    documents = 0
    for name in mongo_db.list_collection_names():
        for doc in mongo_db[name].find():
            documents += 1
            assert CANARY not in json.dumps(doc, default=str), (name, doc["_id"])
    assert documents > 20
    sealed = mongo_db.connections.find_one({"_id": conn["id"]})["odbc_sealed"]
    assert sealed.startswith("v1:") and CANARY not in sealed
    messages = 0
    for topic in TOPICS:
        out = kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k %h %s\n",
                   timeout=120)
        messages += out.count(b"\n")
        assert CANARY.encode() not in out, topic
    assert messages >= 8  # two runs: their job messages and at least three events each
    for name in ("api", "worker", "collector"):
        assert CANARY not in services.log(name), name


def rotate(services, current, old=None):
    env = dict(services.env, CONVUTELL_SECRET_KEY=current)
    env.pop("CONVUTELL_SECRET_KEYS_OLD", None)
    if old:
        env["CONVUTELL_SECRET_KEYS_OLD"] = old
    return subprocess.run([BIN, "admin", "rotate-secrets"], env=env, capture_output=True,
                          text=True, timeout=120)


def counts(total, resealed, current, unreadable, hooks=(0, 0, 0, 0)):
    """What rotate-secrets prints: the connections' line, then the webhooks'."""
    return "".join(f"{noun}: {t}; re-sealed under the current key: {r}; already under it: {c}; "
                   f"changed meanwhile (run again): 0; unreadable with the keys given: {u}\n"
                   for noun, (t, r, c, u) in (("connections", (total, resealed, current,
                                                               unreadable)), ("webhooks", hooks)))


def test_rotating_the_key_keeps_every_job_running(api, services, mongo_db, canary_role):
    _, project = project_with(api, CANARY_ODBC)
    job = transfer(api, project)
    done = run(api, job)
    assert done["status"] == "succeeded", done
    old_key, new_key = services.env["CONVUTELL_SECRET_KEY"], os.urandom(32).hex()
    total = mongo_db.connections.count_documents({})
    hooks = mongo_db.webhooks.count_documents({})  # test_rights made one

    made = rotate(services, new_key, "  " + os.urandom(32).hex() + "," + old_key)
    # (FerretDB's driver warns of endSessions on stderr at exit: not ours.)
    complaints = [line for line in made.stderr.splitlines() if "endSessions" not in line]
    assert (made.returncode, made.stdout, complaints) == (
        0, counts(total, total, 0, 0, (hooks, hooks, 0, 0)), [])
    again = rotate(services, new_key, old_key)
    assert (again.returncode, again.stdout) == (0, counts(total, 0, total, 0, (hooks, 0, hooks, 0)))
    # Without the new key nothing opens any more: the old key is out of every document.
    stale = rotate(services, old_key)
    assert stale.returncode == 1
    assert stale.stdout == counts(total, 0, 0, total, (hooks, 0, 0, hooks))
    assert stale.stderr.count("secret does not decrypt") == total + hooks

    # The services on the new key alone (the old one removed): every job still runs.
    for name in ("api", "worker", "collector"):
        assert services.stop(name) == 0
    services.env["CONVUTELL_SECRET_KEY"] = new_key
    services.start("collector")
    services.start("worker")
    services.start("api")
    services.wait_api()
    assert run(api, job)["status"] == "succeeded"
    assert canary_role.execute("SELECT count(*) FROM canary_dst").fetchone() == (500,)
    # A connection made now is sealed under the new key.
    conn, fresh = project_with(api, CANARY_ODBC)
    assert run(api, transfer(api, fresh))["status"] == "succeeded"
    assert rotate(services, new_key).stdout == counts(total + 1, 0, total + 1, 0,
                                                      (hooks, 0, hooks, 0))
