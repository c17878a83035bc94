"""Start-up configuration errors and the collector's idempotence."""
import json
import os
import subprocess
import time
import uuid

from conftest import BIN, kcat


def run_bin(cmd, **env):
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONVUTELL_", "MONGODB_CONNECTION_STRING"))}
    full["CONVUTELL_ENV_FILE"] = "/dev/null"
    full.update(env)
    return subprocess.run([BIN, cmd], env=full, capture_output=True, timeout=30, text=True)


def test_bad_configuration_stops_with_one_line():
    cases = [
        ({"CONVUTELL_HTTP_ADDR": "127.0.0.1:99999"},
         "convutell api: configuration error: CONVUTELL_HTTP_ADDR: port 99999 is out of range 1-65535\n"),
        ({"CONVUTELL_KAFKA_BOOTSTRAP": "broker"},
         "convutell api: configuration error: CONVUTELL_KAFKA_BOOTSTRAP: 'broker' is not host:port\n"),
        ({"MONGODB_CONNECTION_STRING_DB": "bad.name"},
         "convutell api: configuration error: MONGODB_CONNECTION_STRING_DB: 'bad.name' contains "
         "'.', which MongoDB forbids in database names\n"),
        ({"CONVUTELL_LOG_LEVEL": ""},
         "convutell api: configuration error: CONVUTELL_LOG_LEVEL: is set but empty\n"),
        ({},
         "convutell api: configuration error: CONVUTELL_SECRET_KEY: is required by the api "
         "(64 hex digits, e.g. from `openssl rand -hex 32`)\n"),
        ({"CONVUTELL_SECRET_KEY": "abc"},
         "convutell api: configuration error: CONVUTELL_SECRET_KEY: must be 64 hex digits "
         "(openssl rand -hex 32), not 3 characters\n"),
    ]
    for env, expected in cases:
        out = run_bin("api", **env)
        assert (out.returncode, out.stderr) == (78, expected)


def test_env_file_is_read(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# settings\nexport CONVUTELL_HTTP_ADDR='127.0.0.1:0x1'\n")
    out = run_bin("worker", CONVUTELL_ENV_FILE=str(env_file))
    assert out.returncode == 78
    assert out.stderr == ("convutell worker: configuration error: CONVUTELL_HTTP_ADDR: "
                          "port '0x1' is not a number\n")
    env_file.write_text("CONVUTELL_HTTP_ADDR\n")
    out = run_bin("worker", CONVUTELL_ENV_FILE=str(env_file))
    assert out.stderr.endswith(f"{env_file}:1: expected KEY=VALUE\n")


def test_unknown_command():
    out = run_bin("frobnicate")
    assert out.returncode == 2
    assert out.stderr.startswith("convutell: unknown command 'frobnicate'\nusage: convutell")


def test_replayed_event_changes_nothing(api, mongo_db):
    run_id = str(uuid.uuid4())
    events = [
        {"schema": "convutell.event.v1", "event_id": str(uuid.uuid4()), "type": t,
         "time": f"2026-11-28T05:00:0{i}.000Z", "run_id": run_id, "worker": "w1", "attempt": 1}
        for i, t in enumerate(["run.started", "run.succeeded"])]
    events[1].update(rows_read=5, rows_written=5, duration_ms=10)
    lines = "\n".join(json.dumps(e) for e in events).encode()
    kcat("-P", "-t", "convutell.events", "-k", run_id, data=lines)
    # Replayed twice more, plus a late, stale run.started with a new event id.
    stale = dict(events[0], event_id=str(uuid.uuid4()), time="2026-11-28T05:00:09.000Z")
    kcat("-P", "-t", "convutell.events", "-k", run_id,
         data=lines + b"\n" + lines + b"\n" + json.dumps(stale).encode())
    deadline = time.time() + 30
    while mongo_db.events.count_documents({"run_id": run_id}) < 3 and time.time() < deadline:
        time.sleep(0.25)
    time.sleep(1.0)  # give the collector time to (wrongly) write more
    assert mongo_db.events.count_documents({"run_id": run_id}) == 3
    status, run, _ = api.get(f"/api/v1/runs/{run_id}")
    assert status == 200
    assert (run["status"], run["rows_written"], run["finished_at"]) == (
        "succeeded", 5, "2026-11-28T05:00:01.000Z")
