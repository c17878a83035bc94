"""The command line for people (issue 17): `convutell login`, then projects,
jobs, runs, logs, the console and schedules against the real stack, as a
script sees them (pipes) and as a person sees them (a pseudo-terminal: the
progress bar drawn and ending at the final count)."""
import csv
import io
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN, HTTP_PORT, PG_ODBC
from test_people import make_user

PASSWORD = "cli-password-1"
BIG = 3_000_000


def cli(home, *args, stdin=None, env=None, timeout=120):
    """The command with pipes for stdin, stdout and stderr."""
    e = {"PATH": os.environ["PATH"], "HOME": str(home),
         "CONVUTELL_URL": f"http://127.0.0.1:{HTTP_PORT}"}
    e.update(env or {})
    done = subprocess.run([BIN] + list(args), input=stdin, capture_output=True, text=True,
                          env=e, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def on_terminal(home, *args, timeout=120, answers=()):
    """The command on a pseudo-terminal (stdout and stderr both): its exit
    status and everything it wrote. answers: (prompt, reply) pairs, each reply
    typed once its prompt shows."""
    answers = list(answers)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(BIN, [BIN] + list(args), {"PATH": os.environ["PATH"], "HOME": str(home),
                                            "TERM": "xterm",
                                            "CONVUTELL_URL": f"http://127.0.0.1:{HTTP_PORT}"})
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
            if answers and answers[0][0].encode() in out.split(b"\n")[-1]:
                os.write(fd, answers.pop(0)[1].encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode()


def rows_of(table_text):
    """A printed table as lists of cells (columns are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.rstrip()) for line in table_text.splitlines() if line]


@pytest.fixture(scope="module")
def setup(api, tmp_path_factory, pg_conn):
    """A user of their own with a project: a copy from SQLite, a Python job that
    fails, and a big PostgreSQL transfer whose rows the planner knows."""
    tmp = tmp_path_factory.mktemp("cli")
    make_user(api, "clia", password=PASSWORD)
    status, session, _ = api.as_user("").post("/api/v1/sessions", {"name": "clia",
                                                                   "password": PASSWORD})
    me = api.as_user(session["token"])
    origin = tmp / "o.db"
    with sqlite3.connect(origin) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 3001)])
    pg_conn.execute("DROP TABLE IF EXISTS cli_copy")
    pg_conn.execute("DROP TABLE IF EXISTS cli_big")
    pg_conn.execute("DROP TABLE IF EXISTS cli_big_src")
    pg_conn.execute(f"CREATE TABLE cli_big_src AS SELECT g AS id FROM generate_series(1, {BIG}) g")
    pg_conn.execute("ANALYZE cli_big_src")
    src = me.create("/api/v1/connections", {"name": "cli o", "odbc": f"Driver=SQLite3;Database={origin}"})
    dst = me.create("/api/v1/connections", {"name": "cli d", "odbc": PG_ODBC})
    project = me.create("/api/v1/projects", {"name": "cli project", "origin_connection_id": src["id"],
                                             "destination_connection_id": dst["id"]})
    jobs = f"/api/v1/projects/{project['id']}/jobs"
    me.create(jobs, {"name": "cli copy", "kind": "sql_transfer", "mode": "replace",
                     "query": "SELECT id, v FROM t", "destination_table": "cli_copy"})
    me.create(jobs, {"name": "cli fail", "kind": "python",
                     "script": "import sys\nprint('first line')\nprint('needle here')\n"
                               "print('to stderr', file=sys.stderr)\nraise SystemExit(3)\n"})
    pg_project = me.create("/api/v1/projects", {"name": "cli pg", "origin_connection_id": dst["id"],
                                                "destination_connection_id": dst["id"]})
    me.create(f"/api/v1/projects/{pg_project['id']}/jobs",
              {"name": "cli big", "kind": "sql_transfer", "mode": "replace",
               "query": "SELECT id FROM cli_big_src", "destination_table": "cli_big"})
    home = tmp / "home"
    home.mkdir()
    code, out, err = cli(home, "login", "--name", "clia", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    token_file = home / ".config/convutell/token"
    assert re.fullmatch(rf"signed in to http://127\.0\.0\.1:{HTTP_PORT} as clia; API token "
                        r"\"convutell login on .+\" \(\S+\) saved in " + re.escape(str(token_file))
                        + "\n", out), out
    assert os.stat(token_file).st_mode & 0o777 == 0o600
    assert token_file.read_text().startswith("cvt_")
    return {"home": home, "me": me, "project": project, "pg_project": pg_project}


@pytest.fixture(scope="module")
def pg_conn():
    import psycopg
    from conftest import PG_DSN
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


def test_projects_and_jobs_by_name(setup):
    home = setup["home"]
    code, out, err = cli(home, "projects", "ls")
    assert (code, err) == (0, "")
    table = rows_of(out)
    assert table[0] == ["ID", "NAME", "ACTIVE", "CREATED"]
    assert sorted((r[1], r[2]) for r in table[1:]) == [("cli pg", "true"), ("cli project", "true")]
    code, out, err = cli(home, "projects", "ls", "--json")
    assert sorted(p["name"] for p in json.loads(out)) == ["cli pg", "cli project"]
    code, out, err = cli(home, "jobs", "ls", "cli project")
    assert (code, err) == (0, "")
    assert sorted(tuple(r[1:]) for r in rows_of(out)[1:]) == [
        ("cli copy", "sql_transfer", "-", "1"), ("cli fail", "python", "-", "1")]
    code, out, err = cli(home, "jobs", "show", "cli copy")
    fields = dict(r for r in rows_of(out)[1:])
    assert (code, fields["kind"], fields["destination_table"], fields["mode"], fields["schedule"]) == (
        0, "sql_transfer", "cli_copy", "replace", "-")
    # Not found, several, wrong command lines, a token others may read, no API.
    assert cli(home, "jobs", "show", "no such job")[::2] == (
        1, 'convutell: no job has the id or name "no such job" (that you may see)\n')
    assert cli(home, "jobs", "frobnicate", "x")[::2] == (
        2, "usage: convutell jobs ls PROJECT | jobs show JOB\n")
    code, out, err = cli(home, "projects", "ls", env={"CONVUTELL_URL": "http://127.0.0.1:9"})
    assert code == 1 and err.startswith("convutell: cannot reach the API at http://127.0.0.1:9: ")
    code, out, err = cli(home, "projects", "ls", env={"CONVUTELL_TOKEN": "cvt_not_a_token"})
    assert (code, err) == (1, "convutell: not signed in, or the token is no longer valid: run "
                              "`convutell login` (or set CONVUTELL_TOKEN)\n")
    token_file = home / ".config/convutell/token"
    token_file.chmod(0o644)
    try:
        assert cli(home, "projects", "ls")[::2] == (
            1, f"convutell: {token_file} may be read by others (mode 0644): `chmod 600 "
               f"{token_file}`, or log in again\n")
    finally:
        token_file.chmod(0o600)


def test_run_follow_in_a_script(setup, pg_conn):
    home = setup["home"]
    code, out, err = cli(home, "run", "cli copy", "--follow")
    assert code == 0, err
    run_id = re.search(r"^following run (\S+)$", err, re.M)[1]
    assert re.search(rf"^run {run_id} succeeded: 3,000 rows read, 3,000 written, in [\d.:]+( s)?$",
                     err, re.M), err
    assert pg_conn.execute("SELECT count(*), sum(id) FROM cli_copy").fetchone() == (3000, 4501500)
    # The run as the API has it, as a table and as JSON.
    code, out, err = cli(home, "runs", "show", run_id)
    fields = dict(r for r in rows_of(out)[1:])
    assert (code, fields["status"], fields["rows_written"], fields["trigger"]) == (
        0, "succeeded", "3000", "manual")
    code, out, err = cli(home, "runs", "show", run_id, "--json")
    assert json.loads(out) == setup["me"].get(f"/api/v1/runs/{run_id}")[1]
    code, out, err = cli(home, "runs", "ls", "cli copy")
    assert [r[:3] for r in rows_of(out)] == [["ID", "STATUS", "TRIGGER"], [run_id, "succeeded", "manual"]]
    assert cli(home, "runs", "cancel", run_id)[::2] == (
        1, f"convutell: run {run_id} has already finished (succeeded) (HTTP 409, run_finished)\n")
    # Without --follow: the run's id on stdout, for the next command.
    code, out, err = cli(home, "run", "cli copy")
    assert code == 0 and re.fullmatch(r"[0-9a-f-]{36}\n", out), (out, err)
    assert setup["me"].wait_run(out.strip())["status"] == "succeeded"


def test_a_failing_run_fails_the_command_and_its_log_is_searched(setup):
    home = setup["home"]
    code, out, err = cli(home, "run", "cli fail", "-f")
    run_id = re.search(r"^following run (\S+)$", err, re.M)[1]
    assert code == 1
    assert out == "first line\nneedle here\n"
    assert "to stderr\n" in err
    assert err.endswith(f"run {run_id} failed: script_failed: exited with status 3\n"), err
    assert cli(home, "logs", run_id, "--grep", "NEEDLE") == (0, "needle here\n", "")
    code, out, err = cli(home, "logs", run_id)
    assert (code, sorted(out.splitlines())) == (0, ["first line", "needle here", "to stderr"])
    code, out, err = cli(home, "logs", run_id, "--follow", "--grep", "line")
    assert (code, out) == (0, "first line\n")


def test_run_follow_on_a_terminal_draws_the_bar_to_the_end(setup, pg_conn):
    code, text = on_terminal(setup["home"], "run", "cli big", "--follow")
    assert code == 0, text
    draws = re.findall(r"\r(\[[#.]{24}\]) ([\d,]+) rows of about ([\d,]+), ([\d,]+) rows/s", text)
    assert len(draws) >= 2, text
    count = f"{BIG:,}"
    assert draws[-1] == ("[" + "#" * 24 + "]", count, count, draws[-1][3]), draws[-1]
    assert all(int(d[1].replace(",", "")) <= BIG for d in draws)
    assert re.search(rf"run \S+ succeeded: {count} rows read, {count} written, in ", text), text
    assert pg_conn.execute("SELECT count(*) FROM cli_big").fetchone() == (BIG,)


def test_query_and_schedule(setup):
    home = setup["home"]
    sql = "SELECT id, v FROM cli_copy WHERE id <= 3 ORDER BY id"
    code, out, err = cli(home, "query", "cli project", "--destination", sql)
    assert (code, rows_of(out)) == (0, [["id", "v"], ["1", "v1"], ["2", "v2"], ["3", "v3"]])
    assert re.fullmatch(r"\(3 rows, [\d.]+ s\)\n", err), err
    code, out, err = cli(home, "query", "cli project", "--destination",
                         "SELECT id, v FROM cli_copy ORDER BY id", "--csv")
    assert code == 0, err
    got = list(csv.reader(io.StringIO(out)))
    assert got[0] == ["id", "v"] and got[1:] == [[str(i), f"v{i}"] for i in range(1, 3001)]
    code, out, err = cli(home, "query", "cli project", "--origin", "SELECT nope FROM t")
    assert code == 1 and err.startswith("convutell: the query failed: "), err

    code, out, err = cli(home, "schedule", "cli copy", "--cron", "0 3 * * *", "--tz", "Europe/Zurich")
    lines = out.splitlines()
    assert code == 0 and re.fullmatch(r"schedule of job \S+: 0 3 \* \* \* Europe/Zurich", lines[0])
    assert lines[1] == "next:" and len(lines) == 7, out
    assert all(re.fullmatch(r"  \d{4}-\d\d-\d\dT0[12]:00:00(\.\d+)?Z", l) for l in lines[2:]), out
    code, out, err = cli(home, "schedule", "cli copy", "--pause")
    assert (code, out.splitlines()[0].endswith("0 3 * * * Europe/Zurich, paused")) == (0, True), out
    code, out, err = cli(home, "jobs", "ls", "cli project")
    assert ["cli copy", "sql_transfer", "0 3 * * * Europe/Zurich, paused"] in [r[1:4] for r in rows_of(out)]
    code, out, err = cli(home, "schedule", "cli copy", "--every", "ninety")
    assert (code, err) == (1, 'convutell: --every wants a number of seconds, not "ninety"\n')
    code, out, err = cli(home, "schedule", "cli copy", "--every", "0.5")
    assert (code, err) == (1, "convutell: interval_seconds: must be an integer "
                              "(HTTP 422, invalid_field)\n")
    code, out, err = cli(home, "schedule", "cli copy", "--off")
    assert code == 0 and out.startswith("schedule of job ") and out.endswith(" removed\n"), out
    assert cli(home, "schedule", "cli copy")[0] == 2


def test_run_follow_in_a_script_prints_plain_progress_lines(setup):
    code, out, err = cli(setup["home"], "run", "cli big", "--follow")
    assert code == 0, err
    assert "\r" not in err and "\033" not in err
    lines = re.findall(r"^progress: ([\d,]+) rows(?: of about ([\d,]+))?, ([\d,]+) rows/s, "
                       r"[\d.:]+( s)?(?:, about [\d.:]+( s)? left)?$", err, re.M)
    assert len(lines) >= 2, err
    assert lines[-1][:2] == (f"{BIG:,}", f"{BIG:,}"), lines[-1]  # the last: the final count
    assert re.search(rf"^run \S+ succeeded: {BIG:,} rows read", err, re.M), err


def test_login_asks_on_the_terminal_without_echoing_the_password(setup, tmp_path):
    home = tmp_path / "other-home"
    home.mkdir()
    code, text = on_terminal(home, "login", answers=[("User name: ", "clia"),
                                                     ("Password: ", PASSWORD)])
    assert code == 0, text
    assert PASSWORD not in text and "User name: clia" in text
    assert re.search(r"signed in to \S+ as clia; API token ", text), text
    token = (home / ".config/convutell/token").read_text().strip()
    assert token.startswith("cvt_") and token != (setup["home"] / ".config/convutell/token").read_text().strip()
    code, out, err = cli(home, "projects", "ls")
    assert code == 0 and "cli project" in out
