"""The API against a plain FastAPI + uvicorn + pymongo implementation of the
same routes (bench/api_baseline.py) on the same store and broker, in the same
run: requests per second and p99 latency at 64 keep-alive connections, sent by
wrk (2 threads) for a fixed time, for

  - GET  /api/v1/runs/{id}                 a run of 60 (its record and pieces)
  - GET  /api/v1/jobs/{id}/runs            the job's latest 50 runs
  - POST /api/v1/jobs/{id}/runs            a run queued (record stored, message
                                           acknowledged by the broker)
  - POST /api/v1/projects/{id}/queries/run the console's SELECT 1 on PostgreSQL

Both APIs get the bench administrator's token on every request and check it.
The baseline runs two uvicorn workers (one per core, as Convutell's API uses
both cores through its threads). Convutell's console goes through Kafka and a
worker (the API never connects to customer databases); the baseline runs the
statement from the API process itself, as the original FastAPI tool did. The
console rounds run first, with a Convutell worker; the other routes after it
is stopped, so no run queued by a POST is executed while others are measured.
Each measure runs `rounds` times, alternating the two APIs; the table gives
medians.

    bench/run --api [--seconds 10] [--rounds 3] [--connections 64]
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from signin import HEADERS, auth, sign_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ["CONVUTELL_BIN"]
HOST, PORT, BASE_PORT = "127.0.0.1", 28080, 28081
VENV = os.path.join(os.environ.get("CV_CACHE_DIR", os.path.join(ROOT, ".cache")), "api-bench-venv")


def call(port, method, path, body=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request(method, "/api/v1" + path, body=None if body is None else json.dumps(body),
                 headers=auth({"Content-Type": "application/json"}))
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"null")


def wait_http(port, path, what, log):
    for _ in range(300):
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("GET", path, headers=auth())
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer (see {log})")


def start(cmd, env, tmp, name):
    return subprocess.Popen(cmd, env=env, stdout=open(f"{tmp}/{name}.log", "a"),
                            stderr=subprocess.STDOUT, cwd=os.path.join(ROOT, "bench"))


def stop(proc):
    proc.terminate()
    proc.wait(timeout=60)


def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, method, path, body, seconds, connections, tmp):
    """Requests per second and p99 ms of one measure; every answer must be 2xx."""
    script = os.path.join(tmp, "request.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        f.write(f'wrk.headers["Authorization"] = "{HEADERS["Authorization"]}"\n')
        if body is not None:
            f.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "--timeout", "30s", "-s", script, f"http://{HOST}:{port}/api/v1{path}"],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"{method} {path} on :{port}: not every answer was 2xx\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    return rps, p99


def setup(env, tmp):
    """A PostgreSQL connection, a project and a job of 60 finished runs."""
    pg = (f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={os.environ['CV_PG_PORT']};"
          "Database=convutell;UID=convutell;PWD=convutell")
    made = call(PORT, "POST", "/connections", {"name": "pg", "odbc": pg})[1]
    project = call(PORT, "POST", "/projects", {"name": "api bench", "origin_connection_id": made["id"],
                                               "destination_connection_id": made["id"]})[1]
    job = call(PORT, "POST", f"/projects/{project['id']}/jobs",
               {"name": "select one", "kind": "sql", "statements": "SELECT 1"})[1]
    runs = [call(PORT, "POST", f"/jobs/{job['id']}/runs")[1]["run_id"] for _ in range(60)]
    deadline = time.time() + 120
    while call(PORT, "GET", f"/runs/{runs[-1]}")[1]["status"] != "succeeded":
        if time.time() > deadline:
            raise SystemExit("the setup's runs did not finish")
        time.sleep(0.2)
    return project, job, runs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="convutell-api-bench-")
    dbname = "api_" + uuid.uuid4().hex[:8]
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"{HOST}:{PORT}", CONVUTELL_ENV_FILE="/dev/null",
               CONVUTELL_MONGODB_DB=dbname, CONVUTELL_SECRET_KEY=os.urandom(32).hex(),
               CONVUTELL_LOG_LEVEL="warn", CONVUTELL_HTTP_PER_ADDRESS="256")
    sign_in(BIN, env)
    procs = [start([BIN, name], env, tmp, name) for name in ("collector", "worker", "api")]
    try:
        measure_all(args, env, tmp, dbname, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop(proc)


def measure_all(args, env, tmp, dbname, procs):
    worker = procs[1]
    wait_http(PORT, "/api/v1/health", "the API", f"{tmp}/api.log")
    project, job, run_id = setup(env, tmp)
    base_env = dict(os.environ, BASELINE_MONGODB_URI=os.environ["CONVUTELL_MONGODB_URI"],
                    BASELINE_MONGODB_DB=dbname, BASELINE_KAFKA=os.environ["CONVUTELL_KAFKA_BOOTSTRAP"],
                    BASELINE_PG_DSN=(f"host=127.0.0.1 port={os.environ['CV_PG_PORT']} "
                                     "user=convutell password=convutell dbname=convutell"))
    baseline = start([os.path.join(VENV, "bin", "uvicorn"), "--workers", "2", "--host", HOST,
                      "--port", str(BASE_PORT), "--log-level", "warning", "api_baseline:app"],
                     base_env, tmp, "baseline")
    wait_http(BASE_PORT, f"/api/v1/runs/{run_id}", "the baseline", f"{tmp}/baseline.log")
    assert call(BASE_PORT, "GET", f"/runs/{run_id}")[1]["status"] == "succeeded"

    console = ("POST", f"/projects/{project['id']}/queries/run",
               {"connection": "origin", "sql": "SELECT 1"})
    routes = [("GET /runs/{id}", ("GET", f"/runs/{run_id}", None)),
              ("GET /jobs/{id}/runs", ("GET", f"/jobs/{job['id']}/runs?limit=50", None)),
              ("POST /jobs/{id}/runs", ("POST", f"/jobs/{job['id']}/runs", None))]
    got = {}

    def measure(name, request):
        for r in range(args.rounds):
            for who, port in (("convutell", PORT), ("fastapi", BASE_PORT)):
                rps, p99 = wrk(port, *request, args.seconds, args.connections, tmp)
                got.setdefault((name, who), []).append((rps, p99))
                print(f"round {r + 1}: {name}: {who}: {rps:.0f}/s, p99 {p99:.1f} ms",
                      file=sys.stderr)

    try:
        measure("POST /projects/{id}/queries/run (SELECT 1)", console)
        stop(worker)
        for name, request in routes:
            measure(name, request)
    finally:
        stop(baseline)
    table(args, got)


def table(args, got):
    print(f"\n{args.connections} connections (wrk, 2 threads), {args.seconds} s a measure, "
          f"median of {args.rounds} turns\n")
    print("| route | Convutell req/s | p99 ms | FastAPI req/s | p99 ms | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in dict.fromkeys(n for n, _ in got):
        c = [statistics.median(x) for x in zip(*got[(name, "convutell")])]
        f = [statistics.median(x) for x in zip(*got[(name, "fastapi")])]
        print(f"| {name} | {c[0]:.0f} | {c[1]:.1f} | {f[0]:.0f} | {f[1]:.1f} | "
              f"{c[0] / f[0]:.2f} |")


if __name__ == "__main__":
    main()
