"""What signing in costs the API's hot routes: requests per second of
GET /runs/{id} and POST /jobs/{id}/runs, each sent by C concurrent keep-alive
clients (processes) for a fixed number of requests, against three APIs in turn,
in the same run, on the same store and broker:

  - before sign-in existed (commit BASE, built here once into var/bench-base);
  - today, tokens, users and projects through the API's cache (the default);
  - today, every look-up read from the store (CONVUTELL_CACHE_MS=0).

Every request carries the bench administrator's token (the first API ignores
it). Each API serves `rounds` turns; the table gives the median of its turns
and its ratio to the first. No worker runs: a POST is the run's record and its
message on convutell.jobs, which is what the API does.

    bench/run --auth [--requests 4000] [--clients 4] [--rounds 3]
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

from clients import rate
from signin import auth, sign_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ["CONVUTELL_BIN"]
BASE = "5a70ca4"  # the last commit before tokens (issue 14)
HOST, PORT = "127.0.0.1", 28080


def base_binary():
    """The API of BASE, built once into var/bench-base."""
    out = os.path.join(ROOT, "var", "bench-base")
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", BASE], capture_output=True, text=True,
                         check=True).stdout.strip()
    binary = os.path.join(out, f"convutell-{sha[:12]}")
    if os.path.exists(binary):
        return binary
    src = os.path.join(out, "src")
    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", src],
                   capture_output=True)
    os.makedirs(out, exist_ok=True)
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", src, sha], check=True,
                   capture_output=True)
    subprocess.run(["make", "-s", "-C", src, "build/convutell"], check=True)
    os.replace(os.path.join(src, "build", "convutell"), binary)
    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", src], check=True)
    return binary


def call(conn, method, path, body=None):
    data = None if body is None else json.dumps(body)
    conn.request(method, "/api/v1" + path, body=data,
                 headers=auth({"Content-Type": "application/json"}))
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"null")


def client(method, path, n, ready, go, done):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    call(conn, "GET", "/health")
    ready.release()
    go.wait()
    for _ in range(n):
        status, body = call(conn, method, path)
        if status not in (200, 202):
            done.put(f"{method} {path}: {status} {body}")
            return
    done.put(None)


def start_api(binary, env, tmp, name):
    proc = subprocess.Popen([binary, "api"], env=env, stderr=open(f"{tmp}/{name}.log", "a"))
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
            if call(conn, "GET", "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name}: the API did not answer (see {tmp}/{name}.log)")


def stop(proc):
    proc.terminate()
    proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = base_binary()
    tmp = tempfile.mkdtemp(prefix="convutell-auth-")
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"{HOST}:{PORT}", CONVUTELL_ENV_FILE="/dev/null",
               CONVUTELL_MONGODB_DB="auth_" + uuid.uuid4().hex[:8],
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL="warn")
    sign_in(BIN, env)
    api = start_api(BIN, env, tmp, "setup")
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    made = call(conn, "POST", "/connections", {"name": "a", "odbc": "Driver=SQLite3;Database=:memory:"})[1]
    project = call(conn, "POST", "/projects", {"name": "a", "origin_connection_id": made["id"],
                                               "destination_connection_id": made["id"]})[1]
    job = call(conn, "POST", f"/projects/{project['id']}/jobs",
               {"name": "a", "kind": "sql", "statements": "SELECT 1"})[1]
    run = call(conn, "POST", f"/jobs/{job['id']}/runs")[1]
    stop(api)
    variants = [("before sign-in (" + BASE + ")", base, {}),
                ("tokens, cached", BIN, {}),
                ("tokens, no cache", BIN, {"CONVUTELL_CACHE_MS": "0"})]
    got = {name: {"get": [], "post": []} for name, _, _ in variants}
    for r in range(args.rounds):
        for name, binary, extra in variants:
            api = start_api(binary, dict(env, **extra), tmp, f"api-{r}")
            get, post = ("GET", f"/runs/{run['run_id']}"), ("POST", f"/jobs/{job['id']}/runs")
            rate(client, get, args.clients * 50, args.clients)  # warm-up
            got[name]["get"].append(rate(client, get, args.requests, args.clients))
            got[name]["post"].append(rate(client, post, args.requests, args.clients))
            stop(api)
            print(f"round {r + 1}: {name}: GET {got[name]['get'][-1]:.0f}/s, "
                  f"POST {got[name]['post'][-1]:.0f}/s", file=sys.stderr)
    first = variants[0][0]
    g0, p0 = (statistics.median(got[first][k]) for k in ("get", "post"))
    print(f"\n{args.requests} requests a measure, {args.clients} clients, median of "
          f"{args.rounds} turns\n")
    print("| API | GET /runs/{id} req/s | ratio | POST /jobs/{id}/runs req/s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _, _ in variants:
        g, p = (statistics.median(got[name][k]) for k in ("get", "post"))
        print(f"| {name} | {g:.0f} | {g / g0:.2f} | {p:.0f} | {p / p0:.2f} |")


if __name__ == "__main__":
    main()
