"""Writing to convutell.jobs starts known jobs and nothing else. A job message
names a stored job, its project and optionally its version; the worker takes
the query, transform, script, statements and connections from the store. A
message naming no stored job, another project's job, a version not kept or
another kind is dead-lettered with the reason and runs nothing; a message of
the first version, which carried a definition, is refused by name; a known
job of an inactive project fails its run; a Python job's run may bring
parameters, laid over the stored ones."""
import json
import sqlite3
import time
import uuid

from conftest import kcat
from datasets import pg_checksum, sqlite_checksum
from test_dead_letter import dlq_messages
from test_python import python_job, wait_logs
from test_scheduler import rfc
from test_transfer import setup_job

PRINT_PARAMETERS = "import os\nprint(os.environ['CONVUTELL_PARAMETERS'])\n"


def message(job, project_id=None, **extra):
    return dict({"schema": "convutell.job.v2", "run_id": str(uuid.uuid4()), "job_id": job["id"],
                 "project_id": project_id or job["project_id"], "attempt": 1,
                 "queued_at": rfc(time.time() * 1000)}, **extra)


def send(job, *messages):
    for m in messages:
        kcat("-P", "-t", "convutell.jobs", "-k", job["id"], data=json.dumps(m).encode())


def wait_dlq(before, count, timeout=30):
    deadline = time.time() + timeout
    while len(dlq_messages()) < before + count:
        assert time.time() < deadline, dlq_messages()[before:]
        time.sleep(0.25)
    return dlq_messages()[before:]


def test_messages_naming_no_job_of_ours_run_nothing(api, pg, mongo_db, tmp_path):
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "forged_copy", rows=200)
    (tmp_path / "other").mkdir()
    _, _, _, other_project, other_job = setup_job(api, pg, tmp_path / "other", "forged_other",
                                                  rows=5)
    made_up = str(uuid.uuid4())
    v1 = {"schema": "convutell.job.v1", "run_id": str(uuid.uuid4()), "job_id": job["id"],
          "project_id": project["id"], "kind": "sql_transfer", "attempt": 1,
          "queued_at": rfc(time.time() * 1000),
          "sql_transfer": {"origin_connection_id": src["id"],
                           "destination_connection_id": dst["id"],
                           "query": "DELETE FROM accounts", "destination_table": "forged_copy"}}
    forged = [
        (message({"id": made_up}, project["id"]), "job_id: names no stored job"),
        (message(job, other_project["id"]),
         f"project_id: is not the project of job {job['id']}"),
        (message(job, job_version=2), f"job_version: job {job['id']} is at version 1; "
                                      "version 2 is not kept"),
        (message(job, kind="python"), f"kind: job {job['id']} is a sql_transfer job, not python"),
        (message(job, parameters={"a": 1}),
         f"parameters: job {job['id']} is a sql_transfer job, which takes none"),
        (v1, 'schema: "convutell.job.v1" messages carried a job\'s query, script or statements '
             'and are no longer run; send "convutell.job.v2", which names a stored job'),
    ]
    before = len(dlq_messages())
    rejected_before = mongo_db.events.count_documents({"type": "job.rejected"})
    send(job, *(m for m, _ in forged))
    # Behind them on the job's partition, a message naming the job rightly runs it.
    good = message(job, job_version=1, kind="sql_transfer")
    send(job, good)
    done = api.wait_run(good["run_id"])
    assert (done["status"], done["rows_written"], done["trigger"]) == (
        "succeeded", 200, "external"), done
    assert pg_checksum(pg, "forged_copy") == sqlite_checksum(origin)
    # The v1 message's DELETE never ran: the origin kept its rows.
    assert sqlite3.connect(origin).execute("SELECT count(*) FROM accounts").fetchone()[0] == 200

    new = wait_dlq(before, len(forged))
    assert [(json.loads(p)["run_id"], h["convutell.reason"]) for _, h, p in new] == [
        (m["run_id"], reason) for m, reason in forged]
    # No run was recorded for any of them, and each rejection is on record.
    for m, _ in forged:
        assert mongo_db.runs.count_documents({"_id": m["run_id"]}) == 0
        assert mongo_db.leases.count_documents({"run_id": m["run_id"]}) == 0
    deadline = time.time() + 30
    while (mongo_db.events.count_documents({"type": "job.rejected"})
           < rejected_before + len(forged)):
        assert time.time() < deadline
        time.sleep(0.25)
    assert mongo_db.runs.count_documents({"job_id": other_job["id"]}) == 0


def test_inactive_project_fails_the_run(api, mongo_db):
    conn = api.create("/api/v1/connections",
                      {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
    project = api.create("/api/v1/projects", {"name": "off", "active": False,
                                              "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                     {"name": "s", "kind": "sql", "statements": "SELECT 1"})
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert (status, body["error"]["code"]) == (409, "project_inactive"), body
    m = message(job)
    send(job, m)
    done = api.wait_run(m["run_id"])
    assert (done["status"], done["error"]) == ("failed", {
        "code": "project_inactive",
        "message": f"project {project['id']} is not active; activate it to run its jobs"}), done


def test_run_parameters_are_laid_over_the_stored_ones(api, mongo_db):
    job = python_job(api, PRINT_PARAMETERS, parameters={"day": "2026-12-01", "n": 1})
    # Through the API...
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs",
                               {"parameters": {"n": {"x": [2]}, "extra": True}})
    assert status == 202, body
    done = api.wait_run(body["run_id"])
    assert done["status"] == "succeeded", done
    assert json.loads(wait_logs(mongo_db, done["id"], 1)[0][1]) == {
        "day": "2026-12-01", "n": {"x": [2]}, "extra": True}
    # ...and from another system, on the topic.
    m = message(job, parameters={"day": "2026-12-02"})
    send(job, m)
    done = api.wait_run(m["run_id"])
    assert done["status"] == "succeeded", done
    assert json.loads(wait_logs(mongo_db, done["id"], 1)[0][1]) == {"day": "2026-12-02", "n": 1}

    # Parameters only for Python jobs, checked like the stored ones.
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs", {"parameters": {"$x": 1}})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "parameters",
        "message": 'parameters: has the key "$x": keys must not be empty, start with "$" or '
                   'hold a "."'}})
    sql = api.create(f"/api/v1/projects/{job['project_id']}/jobs",
                     {"name": "s", "kind": "sql", "statements": "SELECT 1"})
    status, body, _ = api.post(f"/api/v1/jobs/{sql['id']}/runs", {"parameters": {"a": 1}})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "parameters",
        "message": f"parameters: job {sql['id']} is a sql job, which takes none"}})
