"""Python jobs: scripts run by the real worker in its sandbox. Their output
arrives as run.log events, their exit status and every broken limit end the run
with a reason, and the worker is unharmed: the same process runs a normal
transfer afterwards with its memory where it was."""
import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import PG_ODBC
from test_load_modes import make_job, run

BEFORE = {}


def python_job(api, script, **extra):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "py", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      dict({"name": "script", "kind": "python", "script": script}, **extra))


def logs(mongo_db, run_id):
    return sorted((e["stream"], e["line"]) for e in
                  mongo_db.events.find({"run_id": run_id, "type": "run.log"}))


def wait_logs(mongo_db, run_id, count, timeout=30):
    deadline = time.time() + timeout
    while mongo_db.events.count_documents({"run_id": run_id, "type": "run.log"}) < count:
        assert time.time() < deadline, logs(mongo_db, run_id)
        time.sleep(0.1)
    return logs(mongo_db, run_id)


def rss_kib(services):
    with open(f"/proc/{services.procs['worker'].pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def transfer(api, pg):
    """A normal SQL transfer, checked."""
    pg.execute("DROP TABLE IF EXISTS py_after_src")
    pg.execute("DROP TABLE IF EXISTS py_after_dst")
    pg.execute("CREATE TABLE py_after_src AS SELECT g AS id FROM generate_series(1, 1000) g")
    done = run(api, make_job(api, PG_ODBC, PG_ODBC, "py_after_dst",
                             query="SELECT id FROM py_after_src"))
    assert (done["status"], done["rows_written"]) == ("succeeded", 1000), done
    assert pg.execute("SELECT sum(id) FROM py_after_dst").fetchone() == (500500,)


def test_script_prints_and_succeeds(api, pg, services, mongo_db):
    transfer(api, pg)  # the worker's drivers loaded: its memory as it runs jobs
    BEFORE["rss"], BEFORE["pid"] = rss_kib(services), services.procs["worker"].pid
    job = python_job(api, "import json, os, sys\nprint('hello')\nprint('w\\u00f6rld')\n"
                          "print('warn', file=sys.stderr)\n"
                          "print(json.loads(os.environ['CONVUTELL_PARAMETERS'])['n'] * 2)\n",
                     parameters={"n": 21})
    assert (job["kind"], job["parameters"]) == ("python", {"n": 21})
    done = run(api, job)
    assert (done["status"], done["exit_code"], done["lines_dropped"]) == ("succeeded", 0, 0), done
    assert wait_logs(mongo_db, done["id"], 4) == [
        ("stderr", "warn"), ("stdout", "42"), ("stdout", "hello"), ("stdout", "wörld")]


def test_odd_output_is_stored_cleanly(api, mongo_db):
    """Invalid UTF-8 and NUL bytes are replaced (JSON and MongoDB take UTF-8
    only) and a line over 4,096 bytes is cut and marked."""
    done = run(api, python_job(api, "import sys\n"
                                    "sys.stdout.buffer.write(b'caf\\xe9 \\x00ok\\n')\n"
                                    "sys.stdout.buffer.write('\u00e9\u20ac'.encode() * 2000 + b'\\n')\n"))
    assert done["status"] == "succeeded", done
    wait_logs(mongo_db, done["id"], 2)
    events = list(mongo_db.events.find({"run_id": done["id"], "type": "run.log"}))
    short = next(e for e in events if e["line"].startswith("caf"))
    long = next(e for e in events if not e["line"].startswith("caf"))
    assert short["line"] == "caf\ufffd \ufffdok" and "line_cut" not in short
    # 4,096 bytes of a line made of 2- and 3-byte characters: cut at a character edge.
    assert long["line_cut"] is True and long["line"] == "\u00e9\u20ac" * 819
    assert len(long["line"].encode()) == 4095


def test_empty_output_lines_are_log_lines(api, mongo_db):
    """An empty line is output too: stored as a run.log with line "" (the
    collector refused it before, and it went to rejected_events)."""
    done = run(api, python_job(api, "print('a')\nprint()\nprint('b')\n"))
    assert done["status"] == "succeeded", done
    assert wait_logs(mongo_db, done["id"], 3) == [("stdout", ""), ("stdout", "a"), ("stdout", "b")]
    assert mongo_db.rejected_events.count_documents({"payload": {"$regex": done["id"]}}) == 0


def test_a_burst_of_lines_is_read_back_in_order(api):
    """500 lines printed within a few milliseconds come back as printed: each
    line's time follows the one before (ids alone would order them at random)."""
    done = run(api, python_job(api, "for i in range(500):\n    print(i)\n"))
    assert done["status"] == "succeeded", done
    status, page, _ = api.get(f"/api/v1/runs/{done['id']}/events?type=run.log&limit=1000")
    assert [e["line"] for e in page["events"]] == [str(i) for i in range(500)]
    times = [e["time"] for e in page["events"]]
    assert times == sorted(set(times))  # strictly increasing


def test_exit_status_fails_the_run(api):
    done = run(api, python_job(api, "print('bye')\nraise SystemExit(3)\n"))
    assert (done["status"], done["exit_code"], done["error"]) == (
        "failed", 3, {"code": "script_failed", "message": "exited with status 3"}), done


def test_script_sees_nothing_of_the_worker(api, mongo_db):
    script = ("import os\nprint(','.join(sorted(os.environ)))\nfds = []\n"
              "for fd in range(3, 4096):\n    try:\n        os.fstat(fd)\n        fds.append(fd)\n"
              "    except OSError:\n        pass\nprint('fds', fds)\nprint('uid', os.getuid())\n"
              "print('cwd', os.getcwd().startswith('/tmp/convutell-run-'))\n")
    done = run(api, python_job(api, script))
    assert done["status"] == "succeeded", done
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for _, line in
                 wait_logs(mongo_db, done["id"], 4))
    assert ("CONVUTELL_ATTEMPT,CONVUTELL_JOB_ID,CONVUTELL_PARAMETERS,CONVUTELL_PROJECT_ID,"
            "CONVUTELL_RUN_ID,HOME,LANG,PATH") in lines
    assert lines["fds"] == "[]" and lines["cwd"] == "True"
    assert lines["uid"] != "0"


@pytest.mark.parametrize("script,extra,status,code,message,within", [
    ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n",
     {"timeout_seconds": 2}, "timed_out", "timed_out",
     "stopped by its limit timeout_seconds = 2", 2 + 5 + 1),
    ("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n",
     {"limits": {"memory_mb": 256}}, "failed", "limit_exceeded",
     "stopped by its limit memory_mb = 256", 20),
    ("import os\nwhile True:\n    os.fork()\n",
     {"limits": {"processes": 16}, "timeout_seconds": 20}, "failed", "limit_exceeded",
     "stopped by its limit processes = 16", 20),
    ("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 1048576)\n",
     {"limits": {"file_size_mb": 8}}, "failed", "limit_exceeded",
     "stopped by its limit file_size_mb = 8", 20),
], ids=["busy_loop", "memory_bomb", "fork_bomb", "huge_file"])
def test_broken_limits_fail_the_run(api, script, extra, status, code, message, within):
    job = python_job(api, script, **extra)
    started = time.time()
    done = run(api, job)
    assert (done["status"], done["error"]) == (status, {"code": code, "message": message}), done
    assert time.time() - started < within + 3  # + Kafka and the collector


def test_output_flood_is_rate_limited(api, mongo_db):
    done = run(api, python_job(api, "for i in range(1000000):\n    print(i)\n"))
    assert done["status"] == "succeeded", done
    seconds = done["duration_ms"] / 1000
    kept = 1_000_000 - done["lines_dropped"]
    assert 1000 <= kept <= 1000 + 100 * (seconds + 1), done
    assert len(wait_logs(mongo_db, done["id"], kept)) == kept


def test_worker_unharmed_afterwards(api, pg, services):
    """The same worker process that ran every script above runs a transfer,
    with its resident memory within 10% of where it was."""
    assert services.procs["worker"].pid == BEFORE["pid"]
    transfer(api, pg)
    # Under AddressSanitizer (`make asan`) freed memory stays resident in its
    # quarantine, so resident size says nothing there.
    if "ASAN_OPTIONS" not in os.environ:
        assert rss_kib(services) <= BEFORE["rss"] * 1.10, (rss_kib(services), BEFORE)


def test_project_interpreter_and_connections(api, mongo_db):
    """A project may name its interpreter (a virtualenv's python here) and
    expose its connection strings to scripts; by default scripts get neither."""
    venv = f"/tmp/convutell-test-venv-{uuid.uuid4().hex[:8]}"  # readable by the script's user
    # Debian's interpreter: one under a private home would not be reachable by
    # the script's user (that case fails the run with "Permission denied").
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], check=True)
    try:
        conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
        script = ("import hashlib, os, sys\nprint('prefix', sys.prefix)\n"
                  "v = os.environ.get('CONVUTELL_ORIGIN_ODBC')\n"
                  "print('origin', v and hashlib.sha256(v.encode()).hexdigest())\n"
                  "print('destination', 'CONVUTELL_DESTINATION_ODBC' in os.environ)\n")
        seen = {}
        for expose in (True, False):
            project = api.create("/api/v1/projects", {
                "name": "py", "origin_connection_id": conn["id"],
                "destination_connection_id": conn["id"], "python_interpreter": f"{venv}/bin/python",
                "expose_connections": expose})
            job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                             {"name": "s", "kind": "python", "script": script})
            done = run(api, job)
            assert done["status"] == "succeeded", done
            seen[expose] = dict(line.split(" ", 1) for _, line in wait_logs(mongo_db, done["id"], 3))
        assert seen[True] == {"prefix": venv, "destination": "True",
                              "origin": hashlib.sha256(PG_ODBC.encode()).hexdigest()}
        assert seen[False] == {"prefix": venv, "destination": "False", "origin": "None"}
    finally:
        shutil.rmtree(venv)
    status, body, _ = api.post("/api/v1/projects", {
        "name": "py", "origin_connection_id": conn["id"], "destination_connection_id": conn["id"],
        "python_interpreter": "venv/bin/python"})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "python_interpreter",
        "message": 'python_interpreter: must be an absolute path such as '
                   '"/opt/venvs/etl/bin/python"'}})


def nested(levels):
    value = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def test_python_job_fields_are_checked(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "py", "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    path = f"/api/v1/projects/{project['id']}/jobs"
    for body, field, message in [
        ({"name": "p", "kind": "python"}, "script", "script: is required"),
        ({"name": "p", "kind": "python", "script": "x", "query": "SELECT 1"}, "query",
         "query: is not a field of a python job"),
        ({"name": "p", "kind": "python", "script": "x", "limits": {"memory_mb": 1}},
         "limits.memory_mb", "limits.memory_mb: must be between 32 and 65536"),
        ({"name": "p", "kind": "shell", "script": "x"}, "kind",
         'kind: must be "sql_transfer", "python" or "sql", not "shell"'),
        # Parameters are stored as a document: keys the store cannot hold and
        # nesting past 20 levels are the client's error, not the store's.
        ({"name": "p", "kind": "python", "script": "x", "parameters": {"$where": "1"}},
         "parameters", 'parameters: has the key "$where": keys must not be empty, start with '
                       '"$" or hold a "."'),
        ({"name": "p", "kind": "python", "script": "x", "parameters": {"a": {"b.c": 1}}},
         "parameters.a", 'parameters.a: has the key "b.c": keys must not be empty, start with '
                         '"$" or hold a "."'),
        ({"name": "p", "kind": "python", "script": "x", "parameters": {"l": [{"": 1}]}},
         "parameters.l[]", 'parameters.l[]: has the key "": keys must not be empty, start with '
                           '"$" or hold a "."'),
        ({"name": "p", "kind": "python", "script": "x", "parameters": nested(200)},
         "parameters" + ".a" * 20,
         "parameters" + ".a" * 20 + ": is nested more than 20 levels deep"),
    ]:
        status, answer, _ = api.post(path, body)
        assert (status, answer) == (422, {"error": {"code": "invalid_field", "field": field,
                                                    "message": message}}), body
