"""The baseline of bench/api.py: the API routes it measures written the plain
way, FastAPI on uvicorn with pymongo, on Convutell's own store (the same
database, the same documents and indexes) and broker:

  GET  /api/v1/runs/{id}                  a run, folded from its record and pieces
  GET  /api/v1/jobs/{id}/runs             a job's latest runs, folded
  POST /api/v1/jobs/{id}/runs             a run's record inserted, its job message
                                          published and acknowledged by Kafka
  POST /api/v1/projects/{id}/queries/run  a console query: its record stored, the
                                          statement run on the project's PostgreSQL
                                          from the API itself (the plain way: no
                                          Kafka, no worker), its result stored

Each request checks its Bearer token like Convutell's API (the SHA-256 of the
token is its _id in `tokens`, then its user) and the caller's membership in
the resource's project (administrators see everything). Synchronous routes,
run by FastAPI's thread pool as pymongo wants. Settings from the environment:
BASELINE_MONGODB_URI, BASELINE_MONGODB_DB, BASELINE_KAFKA, BASELINE_PG_DSN.

    uvicorn --workers 2 api_baseline:app
"""
import datetime
import hashlib
import json
import os
import queue
import threading
import time
import uuid

import psycopg
import pymongo
from confluent_kafka import Producer
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

app = FastAPI()
db = pymongo.MongoClient(os.environ["BASELINE_MONGODB_URI"], maxPoolSize=64)[
    os.environ["BASELINE_MONGODB_DB"]]
producer = Producer({"bootstrap.servers": os.environ["BASELINE_KAFKA"], "acks": "all",
                     "linger.ms": 2, "enable.idempotence": True})
# PostgreSQL connections of this process, at most PG_POOL, made as needed and kept.
PG_POOL = 8
pg_pool, pg_made, pg_lock = queue.Queue(), [0], threading.Lock()


def pg_get():
    with pg_lock:
        if pg_pool.empty() and pg_made[0] < PG_POOL:
            pg_made[0] += 1
            return psycopg.connect(os.environ["BASELINE_PG_DSN"], autocommit=True)
    return pg_pool.get()


def deliveries():
    """Serves the producer's delivery reports for every request thread."""
    while True:
        producer.poll(0.05)


threading.Thread(target=deliveries, daemon=True).start()
ROLES = ["viewer", "runner", "editor", "owner"]


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def caller(authorization):
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "no token")
    digest = hashlib.sha256(authorization[7:].encode()).hexdigest()
    token = db.tokens.find_one({"_id": digest})
    if not token or (token.get("expires_ms", 0) and token["expires_ms"] < time.time() * 1000):
        raise HTTPException(401, "the token is not valid")
    user = db.users.find_one({"_id": token["user"]})
    if not user or user.get("disabled"):
        raise HTTPException(401, "the token is not valid")
    return user


def allowed(user, project_id, need):
    project = db.projects.find_one({"_id": project_id})
    if not project:
        raise HTTPException(404, "not found")
    if user.get("admin"):
        return project
    role = next((m["role"] for m in project.get("members", []) if m["user"] == user["_id"]), None)
    if role is None:
        raise HTTPException(404, "not found")
    if ROLES.index(role) < ROLES.index(need):
        raise HTTPException(403, f"needs {need}")
    return project


def fold(docs):
    """Runs from their records and pieces: each piece's `set` over its record."""
    runs, pieces = {}, []
    for d in docs:
        (pieces if "piece" in d else runs.setdefault(d["run_id"], [])).append(d)
    out = {}
    for run_id, records in runs.items():
        run = dict(records[0])
        run["id"] = run.pop("_id")
        out[run_id] = run
    # "<run>.<attempt>.started" before "<run>.<attempt>.ended", attempt by attempt.
    for p in sorted(pieces, key=lambda p: (int(p["_id"].split(".")[1]), p["piece"] != "started")):
        if p["run_id"] in out:
            out[p["run_id"]].update(p.get("set", {}))
    return out


@app.get("/api/v1/runs/{run_id}")
def get_run(run_id: str, authorization: str = Header(None)):
    user = caller(authorization)
    runs = fold(db.runs.find({"run_id": run_id}))
    if run_id not in runs:
        raise HTTPException(404, "not found")
    allowed(user, runs[run_id]["project_id"], "viewer")
    return runs[run_id]


@app.get("/api/v1/jobs/{job_id}/runs")
def list_runs(job_id: str, limit: int = 50, authorization: str = Header(None)):
    user = caller(authorization)
    job = db.jobs.find_one({"_id": job_id})
    if not job:
        raise HTTPException(404, "not found")
    allowed(user, job["project_id"], "viewer")
    records = list(db.runs.find({"job_id": job_id, "piece": {"$exists": False}})
                   .sort("created_at", -1).limit(limit))
    ids = [r["_id"] for r in records]
    runs = fold(records + list(db.runs.find({"run_id": {"$in": ids}, "piece": {"$exists": True}})))
    return {"runs": [runs[i] for i in ids], "next": None}


@app.post("/api/v1/jobs/{job_id}/runs", status_code=202)
def start_run(job_id: str, authorization: str = Header(None)):
    user = caller(authorization)
    job = db.jobs.find_one({"_id": job_id})
    if not job:
        raise HTTPException(404, "not found")
    project = allowed(user, job["project_id"], "runner")
    if not project.get("active", True):
        raise HTTPException(409, "project inactive")
    run_id, at = str(uuid.uuid4()), now()
    db.runs.insert_one({"_id": run_id, "run_id": run_id, "job_id": job_id,
                        "project_id": job["project_id"], "status": "queued", "trigger": "manual",
                        "attempt": 1, "max_attempts": 1, "created_at": at, "queued_at": at,
                        "day": at[:10], "created_by": user["_id"]})
    done = threading.Event()
    failed = []
    producer.produce("convutell.jobs", key=job_id, value=json.dumps(
        {"schema": "convutell.job.v2", "run_id": run_id, "job_id": job_id,
         "project_id": job["project_id"], "attempt": 1, "queued_at": at, "trigger": "manual"}),
        on_delivery=lambda err, msg: (failed.append(err) if err else None, done.set()))
    if not done.wait(30):
        raise HTTPException(503, "the broker did not acknowledge the job message")
    if failed:
        raise HTTPException(503, str(failed[0]))
    return {"run_id": run_id, "job_id": job_id, "status": "queued", "queued_at": at}


class Query(BaseModel):
    connection: str
    sql: str
    max_rows: int = 1000
    timeout_seconds: int = 30


@app.post("/api/v1/projects/{project_id}/queries/run")
def run_query(project_id: str, q: Query, authorization: str = Header(None)):
    user = caller(authorization)
    allowed(user, project_id, "runner")
    run_id, started = str(uuid.uuid4()), time.monotonic()
    db.query_runs.insert_one({"_id": run_id, "project_id": project_id, "connection": q.connection,
                              "sql": q.sql, "status": "running", "created_at": now(),
                              "created_by": user["_id"]})
    pg = pg_get()
    try:
        with pg.transaction():
            cur = pg.cursor()
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(q.timeout_seconds) * 1000}")
            cur.execute(q.sql)
            columns = [{"name": c.name, "type": str(c.type_code)} for c in cur.description]
            rows = cur.fetchmany(q.max_rows)
    finally:
        pg_pool.put(pg)
    elapsed = int((time.monotonic() - started) * 1000)
    db.query_runs.update_one({"_id": run_id}, {"$set": {
        "status": "succeeded", "columns": columns, "rows": {str(i): r for i, r in enumerate(rows)},
        "row_count": len(rows), "elapsed_ms": elapsed}})
    return {"id": run_id, "status": "succeeded", "columns": columns, "rows": rows,
            "row_count": len(rows), "truncated": False, "elapsed_ms": elapsed}
