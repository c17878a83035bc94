"""Messages that other systems write to convutell.jobs are untrusted: invalid
ones go to convutell.jobs.dlq with the reason, a job.rejected event records
them, and the worker goes on with the next valid job."""
import hashlib
import json
import re
import time
import uuid

from conftest import PG_ODBC, kcat
from test_scheduler import first_tick, put_schedule, rfc, tick_records
from test_scheduler import schedulers  # noqa: F401 (a fixture)
from test_transfer import setup_job
from datasets import pg_checksum, sqlite_checksum


def dlq_messages():
    out = kcat("-C", "-t", "convutell.jobs.dlq", "-o", "beginning", "-e", "-q",
               "-f", "%k\t%h\t%s\n")
    rows = []
    for line in out.decode().splitlines():
        if line.count("\t") < 2:
            raise AssertionError(f"not a dead letter: {line[:300]!r}")
        key, headers, payload = line.split("\t", 2)
        # kcat joins headers with ',', which a reason may hold too: every header
        # name starts with "convutell.".
        pairs = re.split(r",(?=convutell\.)", headers) if headers else []
        rows.append((key, dict(h.split("=", 1) for h in pairs), payload))
    return rows


def test_malformed_job_goes_to_dlq_and_next_job_runs(api, pg, mongo_db, tmp_path):
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_dlq", rows=500)
    before = len(dlq_messages())

    # Same key as the job, so the bad messages sit on the same partition, ahead of it.
    garbage = b'{"schema": "convutell.job.v2", "run_id": '
    with_password = {
        "schema": "convutell.job.v2", "run_id": str(uuid.uuid4()), "job_id": job["id"],
        "project_id": project["id"], "kind": "sql_transfer", "attempt": 1,
        "queued_at": "2026-11-28T04:50:00.000Z", "password": "hunter2"}
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
    assert h2["convutell.reason"] == "password: is not a field of convutell.job.v2"

    # Both rejections are on record; the second one is tied to its run id.
    deadline = time.time() + 30
    while mongo_db.events.count_documents({"type": "job.rejected"}) < 2 and time.time() < deadline:
        time.sleep(0.25)
    # The two can share a millisecond: told apart by what they hold, not by time.
    rejected = sorted(mongo_db.events.find({"type": "job.rejected"}), key=lambda e: "run_id" in e)
    assert len(rejected) == 2
    assert "run_id" not in rejected[0]
    assert rejected[0]["error"]["code"] == "invalid_message"
    assert rejected[0]["error"]["message"].startswith("$: not valid JSON (error near byte 40)")
    assert rejected[1]["run_id"] == with_password["run_id"]
    # The password never reached the record.
    assert "hunter2" not in json.dumps(rejected, default=str)


def test_oversized_messages_are_dead_lettered_by_their_head(api, pg, mongo_db, tmp_path):
    """A message too large to forward whole (1,000,000 bytes, or 3 MB that lz4
    brought under the broker's limit) goes to the dead-letter topic as its
    first 4,096 bytes with its size and SHA-256, and the worker goes on."""
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_dlq_big", rows=300)
    before = len(dlq_messages())
    rejected_before = mongo_db.events.count_documents({"type": "job.rejected"})
    plain = b"x" * 1_000_000
    packed = b"A" * 3_000_000
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], "-X", "message.max.bytes=1040000",
         data=plain)
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], "-z", "lz4",
         "-X", "message.max.bytes=4000000", data=packed)

    # On the same partition, after both: the worker is still there to run it.
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    done = api.wait_run(run["run_id"])
    assert (done["status"], done["rows_written"]) == ("succeeded", 300), done
    assert pg_checksum(pg, "accounts_dlq_big") == sqlite_checksum(origin)

    deadline = time.time() + 30
    while len(dlq_messages()) < before + 2 and time.time() < deadline:
        time.sleep(0.5)
    new = dlq_messages()[before:]
    assert len(new) == 2, [(k, h) for k, h, _ in new]
    for (key, headers, payload), original in zip(new, (plain, packed)):
        assert key == job["id"]
        assert payload.encode() == original[:4096]
        assert headers["convutell.truncated"] == "first 4096 bytes"
        assert headers["convutell.source.size"] == str(len(original))
        assert headers["convutell.source.sha256"] == hashlib.sha256(original).hexdigest()
        assert headers["convutell.reason"] == (
            f"$: message is {len(original)} bytes, more than the limit of 900000")

    deadline = time.time() + 30
    while (mongo_db.events.count_documents({"type": "job.rejected"}) < rejected_before + 2
           and time.time() < deadline):
        time.sleep(0.25)
    rejected = list(mongo_db.events.find({"type": "job.rejected"}).sort("time", 1))[rejected_before:]
    assert [(e["error"]["code"], e["error"]["message"].split(" (")[0]) for e in rejected] == [
        ("invalid_message", "$: message is 1000000 bytes, more than the limit of 900000"),
        ("invalid_message", "$: message is 3000000 bytes, more than the limit of 900000")]
    assert all(e["error"]["message"].endswith(", its head only)") for e in rejected), rejected


def test_scheduler_and_collector_let_oversized_messages_go(api, pg, mongo_db, services, schedulers,
                                                           tmp_path):
    """The same rule past the worker: a non-job too large for the jobs topic
    on the retry topic is dead-lettered by the scheduler, by its head; an
    invalid event of 3 MB is kept in rejected_events by its head, size and
    hash; both services go on."""
    before = len(dlq_messages())
    schedulers()
    packed = b"R" * 3_000_000
    kcat("-P", "-t", "convutell.jobs.retry", "-k", "poison", "-z", "lz4",
         "-X", "message.max.bytes=4000000", data=packed)
    deadline = time.time() + 30
    while len(dlq_messages()) < before + 1 and time.time() < deadline:
        time.sleep(0.5)
    new = dlq_messages()[before:]
    assert len(new) == 1, [(k, h) for k, h, _ in new]
    key, headers, payload = new[0]
    assert (key, payload.encode()) == ("poison", packed[:4096])
    assert headers["convutell.source.topic"] == "convutell.jobs.retry"
    assert headers["convutell.source.sha256"] == hashlib.sha256(packed).hexdigest()
    assert "convutell.scheduler" in headers
    assert headers["convutell.reason"] == "$: message is 3000000 bytes, more than the limit of 900000"

    event = b"\xc3\xa9" * 1_500_000  # 3,000,000 bytes of UTF-8, not JSON
    kcat("-P", "-t", "convutell.events", "-k", "poison", "-z", "lz4",
         "-X", "message.max.bytes=4000000", data=event)
    deadline = time.time() + 30
    kept = None
    while kept is None and time.time() < deadline:
        kept = next(iter(mongo_db.rejected_events.find({"size": 3_000_000}).limit(1)), None)
        time.sleep(0.25)
    assert kept is not None
    assert kept["sha256"] == hashlib.sha256(event).hexdigest()
    assert kept["payload"] == "\u00e9" * 32768  # 65,536 bytes, whole characters
    # Both go on: a run still runs, and its events are stored.
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_dlq_after", rows=10)
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    done = api.wait_run(run["run_id"])
    assert (done["status"], done["rows_written"]) == ("succeeded", 10), done
    assert services.procs["scheduler"].poll() is None


def test_job_larger_than_a_message_runs(api, pg):
    """The definition stays in the store: a job whose query and transform
    (each under its limit of 512 KiB) are together larger than a job message
    may be (900,000 bytes) runs. (Its query ends in a line comment, which the
    ODBC path with a transform once sent on as written: psqlODBC's cursor
    text after it was swallowed and the run failed.)"""
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "big", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    pg.execute("DROP TABLE IF EXISTS big_copy")
    pg.execute("CREATE TABLE big_copy (a int)")
    job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                     {"name": "big", "kind": "sql_transfer", "destination_table": "big_copy",
                      "query": "SELECT g AS a FROM generate_series(1, 7) g -- " + "x" * 470_000,
                      "transform": "import sys\nfor line in sys.stdin:\n    print(line, end='')\n"
                                   "#" + "y" * 470_000})
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, run
    done = api.wait_run(run["run_id"])
    assert (done["status"], done["rows_written"]) == ("succeeded", 7), done
    assert pg.execute("SELECT count(*), sum(a) FROM big_copy").fetchone() == (7, 28)


def test_message_text_cannot_forge_a_log_record(api, services, schedulers):
    """A schema holding a newline and a record of its own reaches the worker's
    log escaped, on the rejection's line; with CONVUTELL_LOG_FORMAT=json every
    line a service writes is one JSON object."""
    forged = "2026-12-04T00:00:00.000Z ERROR worker: forged"
    message = {"schema": "x\n" + forged + "\x1b[2J", "run_id": str(uuid.uuid4())}
    kcat("-P", "-t", "convutell.jobs", "-k", "forge", data=json.dumps(message).encode())
    deadline = time.time() + 30
    while "forged\\x1b[2J" not in services.log("worker"):
        assert time.time() < deadline, services.log("worker")[-2000:]
        time.sleep(0.25)
    lines = services.log("worker").splitlines()
    assert not any(line.startswith(forged) for line in lines)
    assert any("x\\n" + forged + "\\x1b[2J" in line for line in lines)
    # Its dead letter's reason header is one line too, escaped the same way.
    reasons = [h["convutell.reason"] for k, h, _ in dlq_messages() if k == "forge"]
    assert reasons[-1] == ('schema: must be "convutell.job.v2", not "x\\n' + forged
                           + '\\x1b[2J"'), reasons

    services.start("scheduler-json", cmd="scheduler", CONVUTELL_LOG_FORMAT="json")
    deadline = time.time() + 30
    while "partitions assigned" not in services.log("scheduler-json"):
        assert time.time() < deadline, services.log("scheduler-json")
        time.sleep(0.25)
    assert services.stop("scheduler-json") == 0
    records = [json.loads(line) for line in services.log("scheduler-json").splitlines()
               if line.startswith("{")]
    assert records and all(set(r) == {"time", "level", "service", "message"} for r in records)
    assert {r["service"] for r in records} == {"scheduler"}
    assert any("partitions assigned" in r["message"] for r in records)


def test_a_long_run_does_not_stop_its_partition_being_read(api, services, mongo_db):
    """A worker with two threads holds 64 messages at a time. While it runs an
    8 s Python job, 300 invalid messages behind it on the same partition are
    all dead-lettered: a message done behind one still running leaves the
    worker's window (its offset is kept alone, stored once the run ends), so
    the worker reads on. (With every thread busy it would pause its
    partitions instead: that is not this.)"""
    from test_python import python_job
    job = python_job(api, "import time\ntime.sleep(8)\n")
    assert services.stop("worker") == 0
    services.start("worker", CONVUTELL_WORKER_CONCURRENCY="2")
    try:
        before = len(dlq_messages())
        status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, run
        api.wait_running(run["run_id"], timeout=60)
        kcat("-P", "-t", "convutell.jobs", "-k", job["id"],
             data="".join(f"not json {i}\n" for i in range(300)).encode())
        deadline = time.time() + 5
        while len(dlq_messages()) < before + 300:
            assert time.time() < deadline, len(dlq_messages()) - before
            time.sleep(0.25)
        assert api.get(f"/api/v1/runs/{run['run_id']}")[1]["status"] == "running"
    finally:
        assert services.stop("worker") == 0
        services.start("worker")
    assert api.wait_run(run["run_id"])["status"] == "succeeded"
