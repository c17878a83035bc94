"""Throughput of small jobs: N no-op jobs (a `sql` job running `SELECT 1` on
SQLite) submitted through the API by concurrent clients, jobs per second until
every run is final, against the same jobs on Celery + Redis with the same
number of worker processes, both measured here and now. Prints Markdown tables.

    bench/run --throughput [--jobs N] [--workers 1,2,4] [--clients 32] [--warmup 2000]
    bench/run --throughput --hosts 1,2,3 [--workers 4] [--jobs N]
    CV_PG_OPTS="-c shared_preload_libraries=pg_stat_statements" \
        bench/run --throughput --only convutell --profile

--profile prints where a no-op job's milliseconds go: each process's CPU per
job, and the store's PostgreSQL statements per job (calls and time, from
pg_stat_statements, reset when the clock starts).

With --hosts, Convutell alone runs on the three-host cluster of scripts/hosts
(three network namespaces, a broker each, every topic with three replicas and
min.insync.replicas=2): the api and collector on the machine, the workers spread
over the first H hosts in turn, reaching the store through the forwarder on the
hosts' network. The hosts share this machine's cores: the rows show what the
cluster and the network path cost, not more machines' worth of CPU.

Before the clock starts, each system runs --warmup jobs the same way (every
process started and warm: Kafka's JIT compiler was a tenth of the machine's CPU
for the first minute of a cold run).

Latency is from the submission (the POST, or Celery's apply_async) to the final
status read back the way a user reads it (GET /runs/{id}, or the task's state in
the result backend), on a sample of the runs polled by a few threads; its
resolution is a poll round. Throughput counts every run: the clock stops when
the last one is final in the store. Each process's CPU is read from /proc.
"""
import argparse
import datetime
import http.client
import json
import os
import queue
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import pymongo

from signin import auth, sign_in

BIN = os.environ["CONVUTELL_BIN"]
HTTP_HOST, HTTP_PORT = "127.0.0.1", 28080
MONGO_URI = os.environ["CONVUTELL_MONGODB_URI"]
REDIS_PORT = 26379
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}
CLK = os.sysconf("SC_CLK_TCK")
# How often the sampled runs are polled for their final state, both systems: the
# latency's resolution. Tighter polling measured the bench, not the system: 100
# pending runs polled every 20 ms kept the store busy answering it.
POLL_INTERVAL = 0.2


def cpu_seconds(pids):
    """User + system CPU of the processes and their reaped children."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / CLK
        except OSError:
            pass
    return total


def pids_matching(pattern):
    """Processes whose command line contains the regular expression."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def pids_named(name):
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class Client:
    """One keep-alive HTTP connection to the API."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(HTTP_HOST, HTTP_PORT, timeout=60)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        for attempt in range(3):
            try:
                self.conn.request(method, "/api/v1" + path, body=data,
                                  headers=auth({"Content-Type": "application/json"}))
                resp = self.conn.getresponse()
                return resp.status, json.loads(resp.read() or b"null")
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HTTP_HOST, HTTP_PORT, timeout=60)
                if attempt == 2:
                    raise


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def submit_all(n, clients, submit_one):
    """Submits n jobs from `clients` threads; returns [(key, submit_time)]."""
    todo = queue.Queue()
    for i in range(n):
        todo.put(i)
    done, lock = [], threading.Lock()

    def loop():
        state = {}
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            t = time.perf_counter()
            key = submit_one(state)
            with lock:
                done.append((key, t))
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def poll_latencies(samples, is_final, interval, threads=4, timeout=1800):
    """Polls the sampled (key, submitted) pairs until each is final; returns
    their latencies in seconds."""
    lat, lock = [], threading.Lock()
    deadline = time.time() + timeout

    def loop(part):
        state, pending = {}, list(part)
        while pending and time.time() < deadline:
            still = []
            for key, t0 in pending:
                if is_final(state, key):
                    with lock:
                        lat.append(time.perf_counter() - t0)
                else:
                    still.append((key, t0))
            pending = still
            time.sleep(interval)
    parts = [samples[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=loop, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    return ts, lat


# ---- Convutell --------------------------------------------------------------------


def convutell_case(n, workers, clients, sample_every, tmp, timeout, warmup, hosts=None,
                   profile=False):
    """hosts: None, or the cluster (Cluster) and how many of its hosts get workers."""
    db = "tput_" + uuid.uuid4().hex[:8]
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"{HTTP_HOST}:{HTTP_PORT}",
               CONVUTELL_ENV_FILE="/dev/null", CONVUTELL_MONGODB_DB=db,
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL="warn")
    procs = {}
    if hosts:
        env["CONVUTELL_KAFKA_BOOTSTRAP"] = hosts[0].bootstrap

    def spawn(name, cmd, wrap=(), **extra):
        procs[name] = subprocess.Popen([*wrap, BIN, cmd], env=dict(env, **extra),
                                       stderr=open(f"{tmp}/{name}.log", "a"))
    sign_in(BIN, env)
    spawn("collector", "collector")
    spawn("api", "api")
    for i in range(workers):
        if hosts:
            cluster, count = hosts
            spawn(f"worker{i}", "worker", ("ip", "netns", "exec", cluster.names[i % count]),
                  CONVUTELL_MONGODB_URI=cluster.mongo_uri)
        else:
            spawn(f"worker{i}", "worker")
    mongo = pymongo.MongoClient(MONGO_URI)[db]
    try:
        c = Client()
        for _ in range(200):
            try:
                if c.call("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        sqlite_db = f"{tmp}/noop.db"
        sqlite3.connect(sqlite_db).close()
        conn = c.call("POST", "/connections", {"name": "noop",
                                               "odbc": f"Driver=SQLite3;Database={sqlite_db}"})[1]
        project = c.call("POST", "/projects", {"name": "noop", "origin_connection_id": conn["id"],
                                               "destination_connection_id": conn["id"]})[1]
        # One job per client: runs of one job share a partition (they stay in
        # order), so the work spreads over the workers only across jobs.
        jobs = [c.call("POST", f"/projects/{project['id']}/jobs",
                       {"name": f"noop{i}", "kind": "sql", "statements": "SELECT 1"})[1]["id"]
                for i in range(clients)]
        job_filter = {"job_id": {"$in": jobs}}
        next_job = iter(range(10**9))
        last = {}

        def submit(state):
            cl = state.setdefault("c", Client())
            if "path" not in state:
                state["path"] = f"/jobs/{jobs[next(next_job) % len(jobs)]}/runs"
            status, body = cl.call("POST", state["path"])
            assert status == 202, body
            last[state["path"]] = body["run_id"]  # this client's newest run of its job
            return body["run_id"]

        def is_final(state, rid):
            cl = state.setdefault("c", Client())
            return cl.call("GET", f"/runs/{rid}")[1]["status"] in FINAL

        # Warm-up, off the clock: every worker has joined the group and every
        # process (Kafka's JIT included) has run `warmup` jobs, at least one
        # of each job; runs of a job end in order, so its newest ends last.
        submit_all(max(warmup, len(jobs)), clients, submit)
        for rid in list(last.values()):
            while not is_final({"c": c}, rid):
                time.sleep(0.05)
        # A run is stored as its record and pieces (runs/cv_runfold.h): one
        # "ended" piece per finished run.
        ended = dict(job_filter, piece="ended")
        base_final = mongo.runs.count_documents(ended)
        cpu_pids = {name: [p.pid] for name, p in procs.items()}
        cpu_pids["ferretdb"] = pids_named("ferretdb")
        cpu_pids["postgres (store and all)"] = pids_named("postgres")
        if hosts:
            cpu_pids["kafka brokers (3)"] = hosts[0].broker_pids()
            cpu_pids["forwarders"] = hosts[0].forwarder_pids()
        else:
            cpu_pids["kafka"] = pids_matching(
                os.path.join(os.environ["CV_STACK_DIR"], "kafka", "server.properties"))
        cpu0 = {name: cpu_seconds(p) for name, p in cpu_pids.items()}
        if profile:
            store_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            store_sql("SELECT pg_stat_statements_reset()")
        t0 = time.perf_counter()
        submitted = submit_all(n, clients, submit)
        t_submit = time.perf_counter() - t0
        sampled = submitted[::sample_every]
        pollers, lat = poll_latencies(sampled, is_final, POLL_INTERVAL)
        deadline = time.time() + timeout
        # A job's runs run in order, so the newest run of each job ends last;
        # polled by id (a count over the runs would read them all on
        # FerretDB), one at a time: 32 runs every 50 ms were 640 reads a
        # second, a third of what the store served during the run.
        pending = sorted(last.values())
        while pending:
            if time.time() > deadline:
                raise SystemExit(f"convutell: runs not final after {timeout} s: {pending}")
            if is_final({"c": c}, pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.05)
        # Count every end (a few times at most) before stopping the clock.
        while mongo.runs.count_documents(ended) < base_final + n:
            if time.time() > deadline:
                raise SystemExit(f"convutell: not all {n} runs final after {timeout} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        for t in pollers:
            t.join()
        cpu = {name: cpu_seconds(p) - cpu0[name] for name, p in cpu_pids.items()}
        # A PostgreSQL backend that FerretDB opened after the clock started and
        # that is still there: all of its CPU is the run's (one that already
        # ended is in the postmaster's reaped children's time above).
        pg = "postgres (store and all)"
        cpu[pg] += cpu_seconds([p for p in pids_named("postgres") if p not in cpu_pids[pg]])
        statements = store_statements() if profile else []
        path = one_at_a_time(c, jobs[0]) if profile else None
        bad = mongo.runs.count_documents(dict(ended, **{"set.status": {"$ne": "succeeded"}}))
        assert bad == 0, f"{bad} runs did not succeed"
        return dict(n=n, elapsed=elapsed, submit=t_submit, lat=lat, cpu=cpu,
                    statements=statements, path=path)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=60)
        pymongo.MongoClient(MONGO_URI).drop_database(db)


def rfc3339(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_at_a_time(c, job, n=200):
    """One job at a time on the idle system: where its milliseconds go, from the
    POST to the GET that reads it final (polled every 2 ms), split at the times
    the run's record shows (the API's queued_at, the worker's started_at and
    finished_at; one clock, one machine)."""
    parts = {"POST answered (API: record stored, message acknowledged by Kafka)": [],
             "queued to started (Kafka to the worker, its lease claimed)": [],
             "started to finished (its start event acknowledged by Kafka, then SELECT 1)": [],
             "finished to read final (the end event, the collector's batch, the GET)": [],
             "all: POST to final status read": []}
    keys = list(parts)
    for _ in range(n):
        t0 = time.time()
        status, body = c.call("POST", f"/jobs/{job}/runs")
        t1 = time.time()
        assert status == 202, body
        while True:
            doc = c.call("GET", f"/runs/{body['run_id']}")[1]
            if doc["status"] in FINAL:
                break
            time.sleep(0.002)
        t2 = time.time()
        q, st, fin = (rfc3339(doc[k]) for k in ("queued_at", "started_at", "finished_at"))
        for k, v in zip(keys, (t1 - t0, st - q, fin - st, t2 - fin, t2 - t0)):
            parts[k].append(1000 * v)
    return parts


def store_sql(sql):
    """Runs sql in the store's PostgreSQL database; its rows, tab-separated."""
    out = subprocess.run(
        ["psql", "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql,
         f"host=127.0.0.1 port={os.environ['CV_PG_PORT']} user=convutell password=convutell "
         "dbname=convutell_store"], check=True, capture_output=True, text=True)
    return [line.split("\t") for line in out.stdout.splitlines()]


def store_statements():
    """The store's statements since the reset, most time first: (calls, ms, text).
    FerretDB's names of schemas and tables lose their hashes, and a multi-row
    insert counts as one statement whatever its number of rows."""
    rows = store_sql(
        "SELECT calls, total_exec_time + total_plan_time, "
        "regexp_replace(left(query, 300), '\\s+', ' ', 'g') FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'convutell_store')")
    merged = {}
    for c, ms, q in rows:
        q = re.sub(r'"tput_[0-9a-f]+"\."(\w+?)_[0-9a-f]{8}"', r"\1", q)
        q = re.sub(r"VALUES \(\$1\), .*", "VALUES ($1), ... (several rows)", q)
        calls, total = merged.get(q, (0, 0.0))
        merged[q] = (calls + int(c), total + float(ms))
    return sorted(((c, ms, q) for q, (c, ms) in merged.items()), key=lambda r: -r[1])


def profile_table(r):
    """Where a job's milliseconds go: CPU per process, the store's statements."""
    n = r["n"]
    print(f"\nCPU per job ({n:,} jobs, {r['elapsed']:.1f} s, {n / r['elapsed']:,.1f} jobs/s):\n")
    print("| process | CPU ms per job |")
    print("| --- | ---: |")
    for k, v in sorted(r["cpu"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {1000 * v / n:.3f} |")
    print(f"| all | {1000 * sum(r['cpu'].values()) / n:.3f} |")
    if r.get("path"):
        print("\nOne job at a time on the idle system (200 jobs), ms:\n")
        print("| segment | p50 | p90 | p99 |")
        print("| --- | ---: | ---: | ---: |")
        for k, v in r["path"].items():
            print(f"| {k} | {percentile(v, 50):.1f} | {percentile(v, 90):.1f} "
                  f"| {percentile(v, 99):.1f} |")
    stmts = r["statements"]
    if not stmts:
        return
    total = sum(ms for _, ms, _ in stmts)
    print("\nThe store's PostgreSQL statements per job (pg_stat_statements, planning "
          "included; the 12 that took longest):\n")
    print("| statement | calls per job | ms per call | ms per job |")
    print("| --- | ---: | ---: | ---: |")
    for calls, ms, q in stmts[:12]:
        print(f"| `{q[:90]}` | {calls / n:.2f} | {ms / max(calls, 1):.3f} | {ms / n:.3f} |")
    print(f"| all {len(stmts)} statements | {sum(c for c, _, _ in stmts) / n:.2f} | "
          f"| {total / n:.3f} |")


class Cluster:
    """The three hosts of scripts/hosts, up for the time of a `with`."""
    SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "scripts", "hosts")

    def __init__(self):
        mongo = urllib.parse.urlsplit(MONGO_URI)
        self.env = dict(os.environ, CV_HOSTS_PREFIX="cvbench", CV_HOSTS_NET="10.78.0",
                        CV_HOSTS_DIR=os.path.join(os.environ["CV_STACK_DIR"], "hosts"),
                        CV_HOSTS_FORWARD=str(mongo.port))
        self.port = mongo.port

    def run(self, *args):
        return subprocess.run([self.SCRIPT, *args], env=self.env, check=True, text=True,
                              stdout=subprocess.PIPE, timeout=300).stdout

    def __enter__(self):
        self.run("down")
        self.run("up")
        got = dict(line.removeprefix("export ").split("=", 1)
                   for line in self.run("env").splitlines())
        self.bootstrap = got["CV_HOSTS_BOOTSTRAP"]
        self.names = got["CV_HOSTS_NAMES"].strip('"').split()
        self.mongo_uri = urllib.parse.urlsplit(MONGO_URI)._replace(
            netloc=f"{got['CV_HOSTS_GATEWAY']}:{self.port}").geturl()
        return self

    def __exit__(self, *exc):
        self.run("down")

    def broker_pids(self):
        return pids_matching(f"{self.env['CV_HOSTS_DIR']}/kafka./server.properties")

    def forwarder_pids(self):
        """The listening socat and the child it forked for each connection open now
        (same command line; the workers' connections are opened before the clock
        starts)."""
        return pids_matching(f"TCP-LISTEN:{self.port},bind=")


# ---- Celery -------------------------------------------------------------------------

CELERY_APP = '''
import sqlite3, os
from celery import Celery
app = Celery("noop", broker="redis://127.0.0.1:{port}/0", backend="redis://127.0.0.1:{port}/1")
app.conf.update(worker_prefetch_multiplier=4, task_acks_late=False, result_expires=3600)

@app.task
def noop(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT 1").fetchone()[0]
    finally:
        conn.close()
'''


def celery_case(n, workers, clients, sample_every, tmp, venv, timeout, warmup):
    appdir = f"{tmp}/celery"
    os.makedirs(appdir, exist_ok=True)
    with open(f"{appdir}/noop_app.py", "w") as f:
        f.write(CELERY_APP.format(port=REDIS_PORT))
    sqlite_db = f"{tmp}/noop.db"
    sqlite3.connect(sqlite_db).close()
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "flushall"], check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=appdir)
    worker = subprocess.Popen([f"{venv}/bin/celery", "-A", "noop_app", "worker", "-P", "prefork",
                               f"--concurrency={workers}", "--loglevel=WARNING",
                               "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              env=env, cwd=appdir, stderr=open(f"{tmp}/celery.log", "a"))
    sys.path.insert(0, appdir)
    import noop_app  # noqa: E402 (written above)
    from celery.result import AsyncResult
    try:
        def submit(state):
            return noop_app.noop.apply_async((sqlite_db,)).id

        # The same warm-up as Convutell's, off the clock.
        for tid, _ in submit_all(max(warmup, 4 * workers), clients, submit):
            assert AsyncResult(tid, app=noop_app.app).get(timeout=60) == 1

        def is_final(state, tid):
            return AsyncResult(tid, app=noop_app.app).state in ("SUCCESS", "FAILURE")
        cpu_pids = {"celery worker (all processes)": [worker.pid] + [
            int(p) for p in subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                           text=True).stdout.split()],
                    "redis-server": pids_named("redis-server")}
        cpu0 = {name: cpu_seconds(p) for name, p in cpu_pids.items()}
        t0 = time.perf_counter()
        submitted = submit_all(n, clients, submit)
        t_submit = time.perf_counter() - t0
        pollers, lat = poll_latencies(submitted[::sample_every], is_final, POLL_INTERVAL)
        deadline = time.time() + timeout
        pending = [tid for tid, _ in submitted]
        while pending:
            if time.time() > deadline:
                raise SystemExit(f"celery: {len(pending)} tasks not done after {timeout} s")
            pending = [t for t in pending
                       if AsyncResult(t, app=noop_app.app).state not in ("SUCCESS", "FAILURE")]
            if pending:
                time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        for t in pollers:
            t.join()
        cpu = {name: cpu_seconds(p) - cpu0[name] for name, p in cpu_pids.items()}
        failed = sum(AsyncResult(t, app=noop_app.app).state != "SUCCESS" for t, _ in submitted)
        assert failed == 0, f"{failed} celery tasks failed"
        return dict(n=n, elapsed=elapsed, submit=t_submit, lat=lat, cpu=cpu)
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sample-every", type=int, default=200,
                    help="every Nth run's latency is polled (each poll is a read of the store)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--warmup", type=int, default=2000,
                    help="jobs run through each system before the clock starts")
    ap.add_argument("--venv", required=True, help="virtual environment with celery and redis")
    ap.add_argument("--only", default="", help="convutell or celery")
    ap.add_argument("--hosts", default="",
                    help="host counts (e.g. 1,2,3): Convutell on the three-host cluster")
    ap.add_argument("--profile", action="store_true",
                    help="where a job's milliseconds go (needs pg_stat_statements loaded)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="convutell-tput-")
    rows = []
    try:
        if args.hosts:
            return hosts_table(args, tmp)
        for workers in [int(w) for w in args.workers.split(",")]:
            for name in ("celery", "convutell"):
                if args.only and args.only != name:
                    continue
                print(f"bench: {name}, {workers} worker process(es), {args.jobs} jobs",
                      file=sys.stderr)
                if name == "convutell":
                    r = convutell_case(args.jobs, workers, args.clients, args.sample_every, tmp,
                                       args.timeout, args.warmup, profile=args.profile)
                else:
                    r = celery_case(args.jobs, workers, args.clients, args.sample_every, tmp,
                                    args.venv, args.timeout, args.warmup)
                r.update(name=name, workers=workers)
                print(f"bench: {name} x{workers}: {r['n'] / r['elapsed']:.1f} jobs/s", file=sys.stderr)
                rows.append(r)
    except BaseException:
        for log in sorted(os.listdir(tmp)):  # what the services said, before it goes
            if log.endswith(".log"):
                with open(os.path.join(tmp, log), errors="replace") as f:
                    lines = [x for x in f.read().splitlines() if "DEBUG" not in x]
                print(f"---- {log} (last 30 lines) ----", *lines[-30:], sep="\n", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for r in rows:
        if args.profile and r["name"] == "convutell":
            profile_table(r)
    print(f"\n| system | worker processes | jobs | jobs/s | ratio to Celery | submit/s "
          "| latency p50 | p99 | CPU s by process |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    celery = {r["workers"]: r["n"] / r["elapsed"] for r in rows if r["name"] == "celery"}
    for r in rows:
        rate = r["n"] / r["elapsed"]
        ratio = f"{rate / celery[r['workers']]:.2f}" if r["workers"] in celery else "-"
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu"].items())
        print(f"| {r['name']} | {r['workers']} | {r['n']:,} | {rate:,.1f} | {ratio} "
              f"| {r['n'] / r['submit']:,.0f} | {percentile(r['lat'], 50):.2f} s "
              f"| {percentile(r['lat'], 99):.2f} s | {cpu} |")


def hosts_table(args, tmp):
    rows = []
    workers = int(args.workers.split(",")[0])
    with Cluster() as cluster:
        # Three fresh brokers take longer to warm than the usual warm-up: the first
        # row measured 132 and 142 jobs/s, the same row last 259. One case off the
        # record first, on every host.
        print("bench: warming the cluster up (not recorded)", file=sys.stderr)
        convutell_case(args.jobs, workers, args.clients, args.sample_every, tmp, args.timeout,
                       args.warmup, hosts=(cluster, 3))
        for count in [int(h) for h in args.hosts.split(",")]:
            print(f"bench: convutell, {workers} worker process(es) on {count} host(s), "
                  f"{args.jobs} jobs", file=sys.stderr)
            r = convutell_case(args.jobs, workers, args.clients, args.sample_every, tmp,
                               args.timeout, args.warmup, hosts=(cluster, count))
            r.update(hosts=count, workers=workers)
            print(f"bench: {count} host(s): {r['n'] / r['elapsed']:.1f} jobs/s", file=sys.stderr)
            rows.append(r)
    print("\n| hosts with workers | worker processes | jobs | jobs/s | ratio to 1 host "
          "| latency p50 | p99 | CPU s by process |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    first = rows[0]["n"] / rows[0]["elapsed"]
    for r in rows:
        rate = r["n"] / r["elapsed"]
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu"].items())
        print(f"| {r['hosts']} | {r['workers']} | {r['n']:,} | {rate:,.1f} | {rate / first:.2f} "
              f"| {percentile(r['lat'], 50):.2f} s | {percentile(r['lat'], 99):.2f} s | {cpu} |")


if __name__ == "__main__":
    main()
