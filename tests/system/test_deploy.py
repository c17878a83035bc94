"""Deployment (issue 17): `make install` leaves exactly the documented files,
systemd accepts every unit, the man page renders, and Supervisor, installed
from Debian, really keeps the services alive: the session's services make way
for the installed ones under supervisord, a job runs, both workers are killed
and started again, the next job runs on one of the new ones, and `supervisorctl
stop all` stops every service cleanly."""
import getpass
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN, HTTP_PORT, KAFKA, MONGO_URI, PG_ODBC
from test_load_modes import make_job

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.relpath(os.path.dirname(BIN), ROOT)
UNITS = ["convutell-api.service", "convutell-collector.service", "convutell-scheduler.service",
         "convutell-worker@.service", "convutell.target"]
PROGRAMS = ["convutell-api", "convutell-collector", "convutell-scheduler", "convutell-worker-0",
            "convutell-worker-1"]


def install(**paths):
    """`make install` of the test build (already built: make does nothing else)."""
    args = [f"{k.upper()}={v}" for k, v in paths.items()]
    done = subprocess.run(["make", "-s", "--no-print-directory", "install", f"BUILD={BUILD}",
                           "EXTRA_CFLAGS=-Werror"] + args, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


def test_install_leaves_the_documented_files(tmp_path):
    dest = tmp_path / "dest"
    install(destdir=dest, prefix="/usr/local")
    web = [os.path.join("usr/local/share/convutell/web", f)
           for f in files_under(os.path.join(os.path.dirname(BIN), "web"))]
    assert files_under(dest) == sorted([
        "usr/local/bin/convutell",
        "usr/local/share/man/man1/convutell.1",
        "usr/local/share/bash-completion/completions/convutell",
        "usr/local/share/convutell/supervisor/convutell.conf",
        "usr/local/share/convutell/convutell.env.example",
    ] + [f"usr/local/lib/systemd/system/{u}" for u in UNITS] + web)
    modes = {f: os.stat(dest / f).st_mode & 0o777 for f in files_under(dest)}
    assert modes.pop("usr/local/bin/convutell") == 0o755
    assert set(modes.values()) == {0o644}, modes
    # The paths are written in; no placeholder is left.
    for f in files_under(dest):
        if not f.startswith("usr/local/share/convutell/web") and f != "usr/local/bin/convutell":
            assert not re.search(r"@[A-Z]+@", (dest / f).read_text()), f
    unit = (dest / "usr/local/lib/systemd/system/convutell-api.service").read_text()
    assert "ExecStart=/usr/local/bin/convutell api\n" in unit
    assert "EnvironmentFile=/etc/convutell/convutell.env\n" in unit
    conf = (dest / "usr/local/share/convutell/supervisor/convutell.conf").read_text()
    assert "command=/usr/local/bin/convutell worker\n" in conf
    assert "stdout_logfile=/var/log/convutell/api.log\n" in conf
    # The man page renders without a warning, with the installed paths.
    page = subprocess.run(["man", "--warnings", "-l", str(dest / "usr/local/share/man/man1/convutell.1")],
                          env=dict(os.environ, MANWIDTH="80"), capture_output=True, text=True,
                          timeout=60)
    assert (page.returncode, page.stderr) == (0, "")
    text = re.sub(r".\x08", "", page.stdout)
    assert "convutell - move data between databases on a schedule, through Kafka" in text
    assert "/usr/local/share/convutell/supervisor/convutell.conf" in text
    done = subprocess.run([str(dest / "usr/local/bin/convutell"), "version"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and re.fullmatch(r"convutell 0\.1\.0 \([0-9a-f]+(-dirty)?\)\n",
                                                 done.stdout), done


def test_systemd_accepts_every_unit(tmp_path):
    prefix = tmp_path / "prefix"
    install(prefix=prefix)
    units = [str(prefix / "lib/systemd/system" / u) for u in UNITS]
    env = dict(os.environ, MANPATH=str(prefix / "share/man"))
    done = subprocess.run(["systemd-analyze", "verify"] + units, env=env, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    for u in UNITS[:4]:
        done = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                               "--threshold=20", str(prefix / "lib/systemd/system" / u)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)[1])
        assert level <= 2.0, (u, done.stdout)
    # bash completion: the commands, then admin's.
    script = (f"source {prefix}/share/bash-completion/completions/convutell; "
              "COMP_WORDS=(convutell ad); COMP_CWORD=1; _convutell; echo ${COMPREPLY[@]}; "
              "COMP_WORDS=(convutell admin create-user --to); COMP_CWORD=3; _convutell; "
              "echo ${COMPREPLY[@]}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout == "admin\n--token-file\n", done


class Supervisor:
    """supervisord from Debian with the installed programs, in a folder of the test."""

    def __init__(self, tmp, env_file_lines):
        self.tmp = tmp
        self.prefix = tmp / "prefix"
        install(prefix=self.prefix, sysconfdir=tmp / "etc", logdir=tmp / "log",
                service_user=getpass.getuser())
        (tmp / "log").mkdir()
        (tmp / "etc/convutell").mkdir(parents=True)
        env_file = tmp / "etc/convutell/convutell.env"
        env_file.write_text("\n".join(env_file_lines) + "\n")
        env_file.chmod(0o600)
        self.conf = tmp / "supervisord.conf"
        self.conf.write_text(f"""[unix_http_server]
file={tmp}/supervisor.sock

[supervisord]
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}/log

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{tmp}/supervisor.sock

[include]
files={self.prefix}/share/convutell/supervisor/convutell.conf
""")
        # Only what a service manager gives: the settings come from the env file.
        clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", str(self.conf)], env=clean,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ctl(self, *args):
        done = subprocess.run(["supervisorctl", "-c", str(self.conf)] + list(args),
                              capture_output=True, text=True, timeout=120)
        return done.stdout

    def states(self):
        """{program: (state, pid)} as supervisorctl status tells."""
        out = {}
        for line in self.ctl("status").splitlines():
            m = re.match(r"convutell:(\S+)\s+(\S+)(?:\s+pid (\d+))?", line)
            if m:
                out[m[1]] = (m[2], int(m[3]) if m[3] else None)
        return out

    def wait_running(self, old_pids=(), timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            states = self.states()
            if sorted(states) == PROGRAMS and all(
                    s == "RUNNING" and pid not in old_pids for s, pid in states.values()):
                return states
            time.sleep(0.3)
        raise AssertionError(f"not all running: {self.states()}\n{self.log('supervisord')}")

    def log(self, name):
        path = self.tmp / ("supervisord.log" if name == "supervisord" else f"log/{name}.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def shutdown(self):
        if self.proc.poll() is None:
            self.ctl("shutdown")
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_job(api, job):
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, body
    return api.wait_run(body["run_id"], timeout=120)


@pytest.fixture()
def supervised(services, tmp_path):
    """The session's services stopped, the installed ones under supervisord on
    the same store, broker and port; the session's started again afterwards."""
    env = services.env
    lines = [f"CONVUTELL_KAFKA_BOOTSTRAP={KAFKA}", f"CONVUTELL_MONGODB_URI={MONGO_URI}",
             f"CONVUTELL_MONGODB_DB={env['CONVUTELL_MONGODB_DB']}",
             f"CONVUTELL_HTTP_ADDR=127.0.0.1:{HTTP_PORT}",
             f"CONVUTELL_SECRET_KEY={env['CONVUTELL_SECRET_KEY']}",
             "CONVUTELL_LEASE_SECONDS=4", "CONVUTELL_LOG_LEVEL=info"]
    for name in ("api", "worker", "collector"):
        assert services.stop(name) == 0
    sup = Supervisor(tmp_path, lines)
    try:
        yield sup
    finally:
        sup.shutdown()
        for name in ("collector", "worker", "api"):
            services.start(name)
        services.wait_api()


def test_supervisor_restarts_a_killed_worker_and_stops_all_cleanly(supervised, api, pg, tmp_path):
    sup = supervised
    first = sup.wait_running()
    origin = tmp_path / "o.db"
    with sqlite3.connect(origin) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 1001)])
    pg.execute("DROP TABLE IF EXISTS deploy_t")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "deploy_t",
                   query="SELECT id, v FROM t", mode="replace")
    done = run_job(api, job)
    assert done["status"] == "succeeded", done
    assert pg.execute("SELECT count(*), sum(id) FROM deploy_t").fetchone() == (1000, 500500)

    # Both workers killed outright: Supervisor starts them again.
    old = {first[p][1] for p in PROGRAMS if p.startswith("convutell-worker")}
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    again = sup.wait_running(old_pids=old)
    new = {again[p][1] for p in PROGRAMS if p.startswith("convutell-worker")}
    assert (again["convutell-api"], again["convutell-collector"], again["convutell-scheduler"]) == (
        first["convutell-api"], first["convutell-collector"], first["convutell-scheduler"])
    assert sup.log("supervisord").count("terminated by SIGKILL") == 2
    done = run_job(api, job)
    assert done["status"] == "succeeded", done
    assert int(done["worker"].rsplit("-", 1)[1]) in new, (done["worker"], new)
    assert pg.execute("SELECT count(*), sum(id) FROM deploy_t").fetchone() == (1000, 500500)

    # Every service stops on TERM with status 0; each logged to its own file.
    out = sup.ctl("stop", "all")
    assert sorted(re.findall(r"convutell:(\S+): stopped", out)) == PROGRAMS, out
    assert all(state == "STOPPED" for state, _ in sup.states().values()), sup.states()
    log = sup.log("supervisord")
    for p in PROGRAMS:
        assert f"stopped: {p} (exit status 0)" in log, log
    assert "api listening on http://127.0.0.1" in sup.log("api")
    assert "consuming convutell.jobs" in sup.log("convutell-worker-0")
    assert "stopped" in sup.log("collector")


def test_log_file_is_opened_again_on_sighup(services, mongo_db, tmp_path):
    """CONVUTELL_LOG_FILE, logrotate's way: the file moved aside, SIGHUP, and the
    next lines go to a new file; the first line tells the version and setup."""
    log = tmp_path / "api.log"
    env = dict(services.env, CONVUTELL_MONGODB_DB=f"{services.env['CONVUTELL_MONGODB_DB']}_hup",
               CONVUTELL_HTTP_ADDR=f"127.0.0.1:{HTTP_PORT + 31}", CONVUTELL_LOG_FILE=str(log))
    proc = subprocess.Popen([BIN, "api"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.time() + 30
        while "api listening" not in (log.read_text() if log.exists() else ""):
            assert time.time() < deadline and proc.poll() is None, proc.communicate(timeout=5)
            time.sleep(0.1)
        os.rename(log, tmp_path / "api.log.1")
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while not log.exists():
            assert time.time() < deadline, "no new log file after SIGHUP"
            time.sleep(0.05)
        assert proc.poll() is None  # a HUP is no stop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mongo_db.client.drop_database(env["CONVUTELL_MONGODB_DB"])
    assert (proc.returncode, out, err) == (0, b"", b"")
    first = (tmp_path / "api.log.1").read_text().splitlines()
    assert re.fullmatch(
        r"\S+ INFO api: convutell 0\.1\.0 \([0-9a-f]+(-dirty)?\) api starting: kafka \S+; "
        r"mongodb mongodb://\S+ database \S+_hup; http 127\.0\.0\.1:\d+, \d+ connections, .*"
        r"secret key set \(0 old\); log text to " + re.escape(str(log)), first[0]), first[0]
    assert services.env["CONVUTELL_SECRET_KEY"] not in "\n".join(first)
    assert not any(line.endswith(" INFO api: stopped") for line in first)
    assert any(line.endswith(" INFO api: stopped") for line in log.read_text().splitlines())
