"""GET /api/v1/instance (administrators): MongoDB and Kafka answering, the
workers seen in the last minute from their heartbeats (cv_beat), and each
consumer group's lag as the broker counts it, checked against the worker's and
collector's own metrics."""
import socket
import time

from test_metrics import lag
from test_scheduler import wait_for
from test_people import make_user, token_of

GROUPS = [("convutell-workers", "convutell.jobs", 8), ("convutell-console", "convutell.queries", 3),
          ("convutell-collector", "convutell.events", 3),
          ("convutell-webhooks", "convutell.events", 3),
          ("convutell-scheduler", "convutell.jobs.retry", 3)]


def test_instance_shows_the_stores_the_workers_and_the_lags(api, services):
    # The session's worker beat when it started, and every 15 s since.
    deadline = time.time() + 20
    while True:
        status, body, _ = api.get("/api/v1/instance")
        assert status == 200, body
        mine = [w for w in body["workers"] if w["pid"] == services.procs["worker"].pid]
        # Early in a session a group's coordinator may not answer yet ({..., error}).
        if (mine and all("error" not in g for g in body["lag"])) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert (body["status"], body["mongodb"], body["kafka"]) == ("ok", "ok", "ok")
    assert len(mine) == 1, body["workers"]
    worker = mine[0]
    # CONVUTELL_WORKER_ID is not set in the tests: the id is host-pid.
    assert (worker["id"], worker["host"]) == (f"{socket.gethostname()[:100]}-{worker['pid']}",
                                              socket.gethostname())
    assert worker["slots"] == 32  # CONVUTELL_WORKER_CONCURRENCY's default
    assert worker["started_at"] <= worker["seen_at"]
    assert [(g["group"], g["topic"], g["partitions"]) for g in body["lag"]] == GROUPS
    assert all(isinstance(g["lag"], int) and g["lag"] >= 0 for g in body["lag"]), body["lag"]
    # The same numbers as the processes' own gauges, once nothing moves.
    def same():
        lags = {g["group"]: g["lag"] for g in api.get("/api/v1/instance")[1]["lag"]}
        return (lags["convutell-workers"], lags["convutell-collector"]) == (
            lag(services.metrics["worker"], "convutell-workers"),
            lag(services.metrics["collector"], "convutell-collector"))
    wait_for(same, 20, "the instance's lags to match the gauges")


def test_instance_is_for_administrators(api):
    make_user(api, "ivy", password="ivy-password-12")
    status, body, _ = api.as_user(token_of(api, "ivy", "ivy-password-12")).get("/api/v1/instance")
    assert (status, body["error"]["code"]) == (403, "forbidden"), body
