"""The SQL console's round trip, as a user meets it: POST
/projects/{id}/queries/run with `SELECT 1` until the answer with its rows
(API -> store -> convutell.queries -> worker -> database -> store ->
convutell.replies -> API), on SQLite and on PostgreSQL.

Two measures, each against a baseline taken in the same run:
  - latency: `requests` queries one after another from one client, p50,
    p95 and p99, beside the same client's GET /health on the same API (an
    HTTP round trip that does nothing) and psycopg's own SELECT 1 on the
    PostgreSQL server (the database's round trip);
  - rate: `requests` queries from C concurrent keep-alive clients (processes),
    queries per second.
The aim (issue 15) is a p50 under 50 ms for SELECT 1.

    bench/run --console [--requests 400] [--clients 16]
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg

from clients import rate
from signin import auth, sign_in

BIN = os.environ["CONVUTELL_BIN"]
HOST, PORT = "127.0.0.1", 28081
PG_PORT = int(os.environ["CV_PG_PORT"])
PG_ODBC = (f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={PG_PORT};"
           "Database=convutell;UID=convutell;PWD=convutell")
PG_DSN = f"host=127.0.0.1 port={PG_PORT} user=convutell password=convutell dbname=convutell"


def call(conn, method, path, body=None):
    data = None if body is None else json.dumps(body)
    conn.request(method, "/api/v1" + path, body=data,
                 headers=auth({"Content-Type": "application/json"}))
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"null")


def query(conn, project, wait=10):
    status, body = call(conn, "POST", f"/projects/{project}/queries/run",
                        {"connection": "origin", "sql": "SELECT 1", "wait_seconds": wait})
    if status != 200 or body.get("rows") != [[1]]:
        raise SystemExit(f"console: {status} {body}")


def timings(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return out


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p))]


def client(project, n, ready, go, done):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    call(conn, "GET", "/health")
    ready.release()
    go.wait()
    try:
        for _ in range(n):
            query(conn, project)
    except SystemExit as e:
        done.put(str(e))
        return
    done.put(None)


def start(name, env, tmp):
    return subprocess.Popen([BIN, name], env=env, stdout=open(f"{tmp}/{name}.log", "a"),
                            stderr=subprocess.STDOUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="convutell-console-")
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"{HOST}:{PORT}", CONVUTELL_ENV_FILE="/dev/null",
               CONVUTELL_MONGODB_DB="console_" + uuid.uuid4().hex[:8],
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warn"))
    sign_in(BIN, env)
    procs = [start("worker", env, tmp), start("api", env, tmp)]
    try:
        conn = None
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
                if call(conn, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        projects = {}
        for db, odbc in (("SQLite", "Driver=SQLite3;Database=:memory:"), ("PostgreSQL", PG_ODBC)):
            made = call(conn, "POST", "/connections", {"name": db, "odbc": odbc})[1]
            projects[db] = call(conn, "POST", "/projects",
                                {"name": db, "origin_connection_id": made["id"],
                                 "destination_connection_id": made["id"]})[1]["id"]
        for project in projects.values():  # the worker's group, pool and caches warm
            for _ in range(6):  # a fresh broker makes its group topic first
                status, body = call(conn, "POST", f"/projects/{project}/queries/run",
                                    {"connection": "origin", "sql": "SELECT 1", "wait_seconds": 25})
                if status == 200:
                    break
            for _ in range(20):
                query(conn, project)
        health = timings(lambda: call(conn, "GET", "/health"), args.requests)
        with psycopg.connect(PG_DSN, autocommit=True) as pg:
            direct = timings(lambda: pg.execute("SELECT 1").fetchone(), args.requests)
        rows = [("GET /health (HTTP round trip)", health),
                ("psycopg SELECT 1 on PostgreSQL (database round trip)", direct)]
        for db, project in projects.items():
            rows.append((f"console SELECT 1 on {db}",
                         timings(lambda p=project: query(conn, p), args.requests)))
        rates = {db: rate(client, (project,), args.requests, args.clients)
                 for db, project in projects.items()}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    print(f"\n{args.requests} requests a measure, one client for the latencies, "
          f"{args.clients} for the rates; {os.cpu_count()} cores\n")
    print("| round trip | p50 ms | p95 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for label, ms in rows:
        print(f"| {label} | {statistics.median(ms):.1f} | {pct(ms, 0.95):.1f} | "
              f"{pct(ms, 0.99):.1f} |")
    print("\n| console SELECT 1 | queries/s at %d clients |" % args.clients)
    print("| --- | ---: |")
    for db, r in rates.items():
        print(f"| {db} | {r:.0f} |")
    p50 = max(statistics.median(ms) for label, ms in rows if label.startswith("console"))
    print(f"\naim: p50 under 50 ms: {'met' if p50 < 50 else 'NOT met'} ({p50:.1f} ms)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
