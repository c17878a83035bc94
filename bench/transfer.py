"""Transfer benchmark: rows per second of a Convutell run (from the POST that
triggers it to the run reading `succeeded`) against a hand-made pipe doing the
same copy, both measured here and now. Prints a Markdown table.

    bench/run [--rows N] [--repeat K]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import psycopg

from signin import auth, sign_in

BIN = os.environ["CONVUTELL_BIN"]
PG_PORT = os.environ["CV_PG_PORT"]
PG_DSN = f"host=127.0.0.1 port={PG_PORT} user=convutell password=convutell dbname=convutell"
PG_ODBC = (f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={PG_PORT};"
           "Database=convutell;UID=convutell;PWD=convutell")
HTTP = "127.0.0.1:28080"
API = f"http://{HTTP}/api/v1"
PSQL = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "convutell", "convutell"]
COLUMNS = "aid, bid, abalance, filler"
DEST_DDL = "CREATE TABLE {} (aid integer, bid integer, abalance integer, filler character(84))"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method, headers=auth())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def reset(pg, table):
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    pg.execute(DEST_DDL.format(table))


def count(pg, table):
    return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def stamp(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def convutell_run(job_id, timeout):
    """Seconds from the POST to reading the final status (polled every 10 ms,
    a GET by id being one indexed look-up); prints where they went."""
    start, wall = time.perf_counter(), time.time()
    run = call("POST", f"/jobs/{job_id}/runs")
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = call("GET", f"/runs/{run['run_id']}")
        if doc["status"] in ("succeeded", "failed"):
            took, read = time.perf_counter() - start, time.time()
            assert doc["status"] == "succeeded", doc
            began, ended = stamp(doc["started_at"]), stamp(doc["finished_at"])
            print(f"bench:   POST to started {1000 * (began - wall):.0f} ms, started to "
                  f"finished {1000 * (ended - began):.0f} ms, finished to read "
                  f"{1000 * (read - ended):.0f} ms", file=sys.stderr)
            return took
        time.sleep(0.01)
    raise SystemExit(f"run {run['run_id']} did not finish in {timeout}s")


def timed_shell(cmd):
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True,
                   env=dict(os.environ, PGPASSWORD="convutell"))
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--only", default="", help="run only the cases whose label contains this")
    args = ap.parse_args()
    scale = max(1, args.rows // 100_000)
    rows = scale * 100_000
    tmp = tempfile.mkdtemp(prefix="convutell-bench-")
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=HTTP, CONVUTELL_ENV_FILE="/dev/null",
               CONVUTELL_MONGODB_DB="bench_" + uuid.uuid4().hex[:8],
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL="warn")
    def spawn(name):
        return subprocess.Popen([BIN, name], env=env, stderr=open(f"{tmp}/{name}.log", "a"))

    sign_in(BIN, env)
    procs = [spawn(name) for name in ("collector", "worker", "api")]

    def fresh_worker():
        """A new worker process, so that its peak memory belongs to one case."""
        procs[1].terminate()
        procs[1].wait(timeout=60)
        procs[1] = spawn("worker")

    def worker_peak_mib():
        with open(f"/proc/{procs[1].pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    try:
        for _ in range(100):
            try:
                call("GET", "/health")
                break
            except OSError:
                time.sleep(0.1)

        print(f"bench: preparing pgbench_accounts ({rows} rows) and its SQLite copy", file=sys.stderr)
        subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), "-I", "dtg", "-h", "127.0.0.1",
                        "-p", PG_PORT, "-U", "convutell", "convutell"], check=True,
                       env=dict(os.environ, PGPASSWORD="convutell"), capture_output=True)
        sqlite_db = f"{tmp}/accounts.db"
        timed_shell(f"sqlite3 {sqlite_db} 'CREATE TABLE pgbench_accounts (aid INTEGER, bid INTEGER, "
                    f"abalance INTEGER, filler CHAR(84))' && "
                    f"{' '.join(PSQL)} -c \"\\copy (SELECT {COLUMNS} FROM pgbench_accounts) TO STDOUT CSV\" "
                    f"| sqlite3 -csv {sqlite_db} '.import /dev/stdin pgbench_accounts'")

        pg = psycopg.connect(PG_DSN, autocommit=True)
        conn_pg = call("POST", "/connections", {"name": "pg", "odbc": PG_ODBC})["id"]
        conn_sqlite = call("POST", "/connections", {"name": "sqlite",
                                                    "odbc": f"Driver=SQLite3;Database={sqlite_db}"})["id"]
        maria_port = os.environ["CV_MARIADB_PORT"]
        maria = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", maria_port, "-u", "convutell",
                 "-pconvutell", "--local-infile=1", "convutell"]
        mcli = " ".join(maria)
        maria_odbc = os.environ["CONVUTELL_MARIADB_ODBC"]
        timed_shell(f"{mcli} -e 'DROP TABLE IF EXISTS pgbench_accounts; CREATE TABLE pgbench_accounts "
                    f"(aid int, bid int, abalance int, filler char(84))' && "
                    f"{' '.join(PSQL)} -c \"\\copy (SELECT {COLUMNS} FROM pgbench_accounts) TO STDOUT\" "
                    f"| {mcli} -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE pgbench_accounts\"")
        conn_maria = call("POST", "/connections", {"name": "mariadb", "odbc": maria_odbc})["id"]
        cases = []
        for label, origin, hand in (
            ("PostgreSQL → PostgreSQL", conn_pg,
             f"{' '.join(PSQL)} -c \"\\copy (SELECT {COLUMNS} FROM pgbench_accounts) TO STDOUT\" | "
             f"{' '.join(PSQL)} -c \"\\copy {{table}} FROM STDIN\""),
            ("SQLite → PostgreSQL", conn_sqlite,
             f"sqlite3 -csv {sqlite_db} 'SELECT {COLUMNS} FROM pgbench_accounts' | "
             f"{' '.join(PSQL)} -c \"\\copy {{table}} FROM STDIN CSV\""),
            ("MariaDB → PostgreSQL", conn_maria,
             f"{mcli} --batch --skip-column-names -e 'SELECT {COLUMNS} FROM pgbench_accounts' | "
             f"{' '.join(PSQL)} -c \"\\copy {{table}} FROM STDIN\""),
        ):
            if args.only not in label:
                continue
            reset(pg, "bench_dest")
            project = call("POST", "/projects", {"name": label, "origin_connection_id": origin,
                                                 "destination_connection_id": conn_pg})["id"]
            job = call("POST", f"/projects/{project}/jobs", {
                "name": label, "kind": "sql_transfer", "destination_table": "bench_dest",
                "query": f"SELECT {COLUMNS} FROM pgbench_accounts"})["id"]
            fresh_worker()
            convutell_run(job, args.timeout)  # warm-up: consumer group joined, caches warm
            reset(pg, "bench_dest")
            conv, base = [], []
            for i in range(args.repeat):
                reset(pg, "bench_hand")
                base.append(timed_shell(hand.format(table="bench_hand")))
                assert count(pg, "bench_hand") == rows
                reset(pg, "bench_dest")
                conv.append(convutell_run(job, args.timeout))
                assert count(pg, "bench_dest") == rows
                print(f"bench: {label} #{i + 1}: convutell {conv[-1]:.2f} s, pipe {base[-1]:.2f} s",
                      file=sys.stderr)
            c, b = statistics.median(conv), statistics.median(base)
            cases.append((label, rows, c, b, worker_peak_mib()))

        # PostgreSQL -> MariaDB: Convutell's LOAD DATA LOCAL INFILE (fed by its
        # reader thread) against psql's COPY TO STDOUT into the mariadb client's.
        maria_ddl = f"CREATE TABLE {{t}} (aid int, bid int, abalance int, filler char(84))"

        def maria_reset(table):
            subprocess.run(maria + ["-e", f"DROP TABLE IF EXISTS {table}; " +
                                    maria_ddl.format(t=table)], check=True)

        def maria_count(table):
            out = subprocess.run(maria + ["-N", "-e", f"SELECT count(*) FROM {table}"],
                                 check=True, capture_output=True, text=True)
            return int(out.stdout.strip())

        label = "PostgreSQL → MariaDB"
        if args.only in label:
            project = call("POST", "/projects", {"name": label, "origin_connection_id": conn_pg,
                                                 "destination_connection_id": conn_maria})["id"]
            job = call("POST", f"/projects/{project}/jobs", {
                "name": label, "kind": "sql_transfer", "destination_table": "bench_dest",
                "query": f"SELECT {COLUMNS} FROM pgbench_accounts"})["id"]
            maria_reset("bench_dest")
            fresh_worker()
            convutell_run(job, args.timeout)  # warm-up
            conv, base = [], []
            for i in range(args.repeat):
                maria_reset("bench_hand")
                base.append(timed_shell(
                    f"{' '.join(PSQL)} -c \"\\copy (SELECT {COLUMNS} FROM pgbench_accounts) TO STDOUT\" "
                    f"| {mcli} -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE bench_hand\""))
                assert maria_count("bench_hand") == rows
                maria_reset("bench_dest")
                conv.append(convutell_run(job, args.timeout))
                assert maria_count("bench_dest") == rows
                print(f"bench: {label} #{i + 1}: convutell {conv[-1]:.2f} s, pipe {base[-1]:.2f} s",
                      file=sys.stderr)
            cases.append((label, rows, statistics.median(conv), statistics.median(base),
                          worker_peak_mib()))

        # A Python transform in the middle (issue 4): the same PostgreSQL -> PostgreSQL
        # transfer through an identity script, against the transfer without one.
        transforms = []
        if args.only in "PostgreSQL → PostgreSQL, transform":
            scripts = {
                "none": None,
                "identity (lines echoed)": "import sys\nfor line in sys.stdin:\n"
                                           "    sys.stdout.write(line)\n",
                "identity (json.loads + json.dumps)":
                    "import json, sys\nfor line in sys.stdin:\n"
                    "    print(json.dumps(json.loads(line)))\n",
            }
            project = call("POST", "/projects", {"name": "transform", "origin_connection_id": conn_pg,
                                                 "destination_connection_id": conn_pg})["id"]
            jobs = {name: call("POST", f"/projects/{project}/jobs", dict(
                {"name": name, "kind": "sql_transfer", "destination_table": "bench_dest",
                 "query": f"SELECT {COLUMNS} FROM pgbench_accounts"},
                **({"transform": script} if script else {})))["id"] for name, script in scripts.items()}
            fresh_worker()
            reset(pg, "bench_dest")
            convutell_run(jobs["none"], args.timeout)  # warm-up
            times = {name: [] for name in scripts}
            for i in range(args.repeat):
                for name in scripts:
                    reset(pg, "bench_dest")
                    times[name].append(convutell_run(jobs[name], args.timeout))
                    assert count(pg, "bench_dest") == rows
                    print(f"bench: transform {name} #{i + 1}: {times[name][-1]:.2f} s",
                          file=sys.stderr)
            base = statistics.median(times["none"])
            for name in scripts:
                transforms.append((name, statistics.median(times[name]), base))

        print(f"\n| transfer ({rows:,} rows, median of {args.repeat}) | Convutell s | rows/s "
              "| hand pipe s | rows/s | ratio | worker peak RSS |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, n, c, b, peak in cases:
            print(f"| {label} | {c:.2f} | {n / c:,.0f} | {b:.2f} | {n / b:,.0f} | {b / c:.3f} "
                  f"| {peak:.1f} MiB |")
        if transforms:
            print(f"\n| PostgreSQL → PostgreSQL through a transform ({rows:,} rows, median of "
                  f"{args.repeat}) | s | rows/s | ratio to no transform |")
            print("| --- | ---: | ---: | ---: |")
            for name, t, base in transforms:
                print(f"| {name} | {t:.2f} | {rows / t:,.0f} | {base / t:.3f} |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


if __name__ == "__main__":
    main()
