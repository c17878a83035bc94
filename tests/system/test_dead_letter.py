"""Messages that other systems write to convutell.jobs are untrusted: invalid
ones go to convutell.jobs.dlq with the reason, a job.rejected event records
them, and the worker goes on with the next valid job."""
import json
import time
import uuid

from conftest import kcat
from test_transfer import setup_job
from datasets import pg_checksum, sqlite_checksum


def dlq_messages():
    out = kcat("-C", "-t", "convutell.jobs.dlq", "-o", "beginning", "-e", "-q",
               "-f", "%k\t%h\t%s\n")
    rows = []
    for line in out.decode().splitlines():
        key, headers, payload = line.split("\t", 2)
        rows.append((key, dict(h.split("=", 1) for h in headers.split(",") if h), payload))
    return rows


def test_malformed_job_goes_to_dlq_and_next_job_runs(api, pg, mongo_db, tmp_path):
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_dlq", rows=500)
    before = len(dlq_messages())

    # Same key as the job, so the bad messages sit on the same partition, ahead of it.
    garbage = b'{"schema": "convutell.job.v1", "run_id": '
    with_password = {
        "schema": "convutell.job.v1", "run_id": str(uuid.uuid4()), "job_id": job["id"],
        "project_id": project["id"], "kind": "sql_transfer", "attempt": 1,
        "queued_at": "2026-11-28T04:50:00.000Z",
        "sql_transfer": {"origin_connection_id": src["id"],
                         "destination_connection_id": dst["id"],
                         "query": "SELECT 1", "destination_table": "accounts_dlq",
                         "password": "hunter2"}}
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], data=garbage)
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], data=json.dumps(with_password).encode())

    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    done = api.wait_run(run["run_id"])
    assert done["status"] == "succeeded" and done["rows_written"] == 500
    assert pg_checksum(pg, "accounts_dlq") == sqlite_checksum(origin)

    deadline = time.time() + 30
    while len(dlq_messages()) < before + 2 and time.time() < deadline:
        time.sleep(0.5)
    new = dlq_messages()[before:]
    assert len(new) == 2, new
    (k1, h1, p1), (k2, h2, p2) = new
    assert (k1, p1) == (job["id"], garbage.decode())
    assert h1["convutell.reason"] == "$: not valid JSON (error near byte 40)"
    assert h1["convutell.source.topic"] == "convutell.jobs"
    assert k2 == job["id"] and json.loads(p2) == with_password
    assert h2["convutell.reason"] == "sql_transfer.password: is not a field of sql_transfer"

    # Both rejections are on record; the second one is tied to its run id.
    deadline = time.time() + 30
    while mongo_db.events.count_documents({"type": "job.rejected"}) < 2 and time.time() < deadline:
        time.sleep(0.25)
    rejected = list(mongo_db.events.find({"type": "job.rejected"}).sort("time", 1))
    assert len(rejected) == 2
    assert "run_id" not in rejected[0]
    assert rejected[0]["error"]["code"] == "invalid_message"
    assert rejected[0]["error"]["message"].startswith("$: not valid JSON (error near byte 40)")
    assert rejected[1]["run_id"] == with_password["run_id"]
    # The password never reached the record.
    assert "hunter2" not in json.dumps(rejected, default=str)
