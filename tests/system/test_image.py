"""The container image without Docker (issue 17): scripts/image-root builds the
last stage of compose/Dockerfile (Debian's minbase from debootstrap, each RUN
in a chroot, the installed files), then a worker from that root filesystem,
as the image's user, takes the session's worker's place and runs a transfer
through the image's ODBC drivers and a Python job; the API from it serves its
health check (the compose file's) and the web interface. The compose file
has a health check on every service, a pool of workers and volumes."""
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request

import pytest
import yaml

from conftest import BIN, HTTP_PORT, PG_ODBC

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.relpath(os.path.dirname(BIN), ROOT)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    root = tmp_path_factory.mktemp("image") / "root"
    done = subprocess.run([os.path.join(ROOT, "scripts", "image-root"), str(root), BUILD],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    conf = dict(line.split("=", 1) for line in (root / ".image").read_text().splitlines())
    # What a container has: /proc (where the API finds its own path, and so its web
    # files) and a /dev/shm (MongoDB's driver keeps its counters there); the
    # root's own /dev holds the device nodes debootstrap made. Nothing of the
    # host's /dev is mounted in it.
    (root / "dev/shm").mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "shm",
                    str(root / "dev/shm")], check=True)
    try:
        yield root, conf["user"], conf["workdir"]
    finally:
        subprocess.run(["umount", "-l", str(root / "dev/shm")], check=False)
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def in_image(image, args, env, **kw):
    """A command of the image's binary, in its root, as its user."""
    root, user, workdir = image
    return subprocess.Popen(["chroot", f"--userspec={user}:{user}", str(root), "/usr/bin/env",
                             "-i"] + [f"{k}={v}" for k, v in env.items()] +
                            ["/bin/sh", "-c", f'cd {workdir} && exec "$@"', "sh",
                             "/usr/local/bin/convutell"] + args, **kw)


def image_env(services, **extra):
    keep = ("CONVUTELL_KAFKA_BOOTSTRAP", "CONVUTELL_MONGODB_URI", "CONVUTELL_MONGODB_DB",
            "CONVUTELL_SECRET_KEY", "CONVUTELL_LEASE_SECONDS", "CONVUTELL_PROGRESS_INTERVAL_MS")
    env = {k: services.env[k] for k in keep}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", CONVUTELL_ENV_FILE="/dev/null", **extra)
    return env


def test_the_image_has_its_user_libraries_and_drivers(image):
    root, user, workdir = image
    assert (user, workdir) == ("convutell", "/var/lib/convutell")
    done = subprocess.run(["chroot", f"--userspec={user}:{user}", str(root),
                           "/usr/local/bin/convutell", "version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("convutell 0.1.0 ("), done
    done = subprocess.run(["chroot", str(root), "ldd", "/usr/local/bin/convutell"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "not found" not in done.stdout, done.stdout
    done = subprocess.run(["chroot", str(root), "odbcinst", "-q", "-d"], capture_output=True,
                          text=True)
    assert {"[PostgreSQL Unicode]", "[SQLite3]", "[MariaDB Unicode]"} <= set(done.stdout.splitlines())
    assert (root / "usr/local/share/convutell/web/index.html").exists()
    assert os.stat(root / "var/lib/convutell").st_uid != 0


def test_a_worker_from_the_image_runs_transfers_and_python(image, services, api, pg):
    root, user, _ = image
    origin = root / "var/lib/convutell/image.db"
    with sqlite3.connect(origin) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 2001)])
    os.chmod(origin, 0o644)
    pg.execute("DROP TABLE IF EXISTS image_t")
    src = api.create("/api/v1/connections", {"name": "img o",
                                             "odbc": "Driver=SQLite3;Database=/var/lib/convutell/image.db"})
    dst = api.create("/api/v1/connections", {"name": "img d", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "image", "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    jobs = f"/api/v1/projects/{project['id']}/jobs"
    copy = api.create(jobs, {"name": "copy", "kind": "sql_transfer", "query": "SELECT id, v FROM t",
                             "destination_table": "image_t"})
    script = api.create(jobs, {"name": "py", "kind": "python",
                               "script": "import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name)\n"})
    assert services.stop("worker") == 0
    log = open(root.parent / "worker.log", "wb")
    worker = in_image(image, ["worker"], image_env(services), stdout=log, stderr=subprocess.STDOUT)
    try:
        runs = []
        for job in (copy, script):
            status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
            assert status == 202, body
            runs.append(api.wait_run(body["run_id"], timeout=120))
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"], runs
        assert all(r["worker"].endswith(f"-{worker.pid}") for r in runs), (runs, worker.pid)
        assert pg.execute("SELECT count(*), sum(id) FROM image_t").fetchone() == (2000, 2001000)
        status, events, _ = api.get(f"/api/v1/runs/{runs[1]['id']}/events?type=run.log")
        assert [e["line"] for e in events["events"]] == [user]
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        log.close()
        services.start("worker")
    assert code == 0, (root.parent / "worker.log").read_text()


def test_the_api_from_the_image_answers_its_health_check_and_serves_the_page(image, services):
    port = HTTP_PORT + 32
    env = image_env(services, CONVUTELL_HTTP_ADDR=f"127.0.0.1:{port}")
    api_proc = in_image(image, ["api"], env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            probe = in_image(image, ["health", f"http://127.0.0.1:{port}/api/v1/healthz"], env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = probe.communicate(timeout=30)
            if probe.returncode == 0:
                break
            assert time.time() < deadline and api_proc.poll() is None, err
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and b"<title>Convutell</title>" in resp.read()
        probe = in_image(image, ["health", f"http://127.0.0.1:{port}/api/v1/nothing-here"], env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = probe.communicate(timeout=30)
        assert (probe.returncode, err) == (
            1, f"convutell: http://127.0.0.1:{port}/api/v1/nothing-here answered 404\n".encode())
    finally:
        api_proc.send_signal(signal.SIGTERM)
        assert api_proc.wait(timeout=60) == 0


def test_compose_file_checks_every_service_and_keeps_data():
    with open(os.path.join(ROOT, "compose", "docker-compose.yml")) as f:
        spec = yaml.safe_load(f)
    services = spec["services"]
    for name in ("kafka", "mongodb", "api", "worker", "collector", "scheduler"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("api", "worker", "collector", "scheduler"):
        assert services[name]["healthcheck"]["test"][:2] == ["CMD", "convutell"], name
        assert services[name]["healthcheck"]["test"][2] == "health", name
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["stop_grace_period"] == "600s"
    assert {"kafka-data", "mongodb-data", "convutell-data"} <= set(spec["volumes"])
    assert "convutell-data:/var/lib/convutell" in services["worker"]["volumes"]
