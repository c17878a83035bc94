"""PUT/GET/DELETE /api/v1/jobs/{id}/schedule: a schedule is checked field by
field (a malformed cron expression or an unknown zone is a 422 naming the
problem), stored with the job, and answered with its next five fire times,
which follow the zone's daylight-saving changes."""
import datetime as dt
import time
from zoneinfo import ZoneInfo

from conftest import PG_ODBC
from test_load_modes import make_job

UTC = dt.timezone.utc


def rfc(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_cron_schedule_across_a_dst_change(api):
    job = make_job(api, PG_ODBC, PG_ODBC, "never_run", query="SELECT 1 AS a")
    path = f"/api/v1/jobs/{job['id']}/schedule"
    status, body, _ = api.call("PUT", path, {"cron": "30 2 * * *", "timezone": "Europe/Berlin",
                                             "start_at": "2027-03-26T00:00:00Z",
                                             "misfire": "run_all", "max_attempts": 3})
    assert status == 200, body
    berlin = ZoneInfo("Europe/Berlin")
    want = [rfc(dt.datetime(2027, 3, day, 2, 30, tzinfo=berlin)) for day in (26, 27)]
    want.append("2027-03-28T01:00:00.000Z")  # 02:30 does not exist that day: 03:00 CEST
    want += [rfc(dt.datetime(2027, 3, day, 2, 30, tzinfo=berlin)) for day in (29, 30)]
    assert body["next_fire_times"] == want
    assert (body["cron"], body["timezone"], body["misfire"], body["max_attempts"],
            body["concurrency"], body["paused"]) == (
        "30 2 * * *", "Europe/Berlin", "run_all", 3, "allow", False)
    assert body["next_run_at"] == want[0]
    status, again, _ = api.get(path)
    assert (status, again["next_fire_times"], again["cron"]) == (200, want, "30 2 * * *")
    status, stored, _ = api.get(f"/api/v1/jobs/{job['id']}")
    assert stored["schedule"]["next_run_at"] == want[0]
    assert stored["scheduled"] is True  # what the scheduler loads jobs by
    status, gone, _ = api.call("DELETE", path)
    assert (status, gone) == (200, {"job_id": job["id"], "schedule": None})
    status, stored, _ = api.get(f"/api/v1/jobs/{job['id']}")
    assert "schedule" not in stored and "scheduled" not in stored
    status, body, _ = api.get(path)
    assert (status, body["error"]["message"]) == (404, f"job {job['id']} has no schedule")


def test_interval_schedule(api):
    job = make_job(api, PG_ODBC, PG_ODBC, "never_run", query="SELECT 1 AS a")
    before = time.time()
    status, body, _ = api.call("PUT", f"/api/v1/jobs/{job['id']}/schedule",
                               {"interval_seconds": 60})
    assert status == 200, body
    times = [dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
             for t in body["next_fire_times"]]
    assert [round(b - a, 3) for a, b in zip(times, times[1:])] == [60.0] * 4
    assert before < times[0] <= time.time() + 60


def test_bad_schedules_name_the_field(api):
    job = make_job(api, PG_ODBC, PG_ODBC, "never_run", query="SELECT 1 AS a")
    path = f"/api/v1/jobs/{job['id']}/schedule"
    for body, field, message in [
        ({"cron": "30 25 * * *"}, "cron",
         'cron: hour field "25": 25: must be between 0 and 23'),
        ({"cron": "30 2 * *"}, "cron",
         "cron: must have 5 fields (minute hour day-of-month month day-of-week), not 4"),
        ({"cron": "0 * * * *", "timezone": "Europe/Atlantis"}, "timezone",
         'timezone: unknown time zone "Europe/Atlantis"'),
        ({"interval_seconds": 60, "cron": "* * * * *"}, "cron",
         "cron: cannot be used with interval_seconds"),
        ({}, "interval_seconds", "interval_seconds: or cron is required"),
        ({"interval_seconds": 60, "misfire": "later"}, "misfire",
         'misfire: must be "run_once", "run_all" or "skip", not "later"'),
        ({"interval_seconds": 60, "start_at": "2027-01-02T00:00:00Z",
          "end_at": "2027-01-01T00:00:00Z"}, "end_at", "end_at: must be after start_at"),
    ]:
        status, answer, _ = api.call("PUT", path, body)
        assert (status, answer) == (422, {"error": {"code": "invalid_field", "field": field,
                                                    "message": message}}), body
    status, answer, _ = api.call("PATCH", path, {})
    assert status == 405


def test_preview_shows_fire_times_without_storing(api):
    """GET /schedules/preview: the same checks and fire times as PUT, stored nowhere."""
    from urllib.parse import urlencode
    query = urlencode({"cron": "30 2 * * *", "timezone": "Europe/Berlin",
                       "start_at": "2027-03-26T00:00:00Z"})
    status, body, _ = api.get(f"/api/v1/schedules/preview?{query}")
    assert status == 200, body
    berlin = ZoneInfo("Europe/Berlin")
    want = [rfc(dt.datetime(2027, 3, day, 2, 30, tzinfo=berlin)) for day in (26, 27)]
    want.append("2027-03-28T01:00:00.000Z")
    want += [rfc(dt.datetime(2027, 3, day, 2, 30, tzinfo=berlin)) for day in (29, 30)]
    assert (body["next_fire_times"], body["cron"], body["timezone"]) == (
        want, "30 2 * * *", "Europe/Berlin")
    status, body, _ = api.get("/api/v1/schedules/preview?interval_seconds=90")
    assert status == 200 and len(body["next_fire_times"]) == 5, body
    for query, field, message in [
        ("cron=30+25+*+*+*", "cron", 'cron: hour field "25": 25: must be between 0 and 23'),
        ("cron=0+*+*+*+*&timezone=Europe/Atlantis", "timezone",
         'timezone: unknown time zone "Europe/Atlantis"'),
        ("interval_seconds=ten", "interval_seconds",
         "interval_seconds: must be a whole number of seconds"),
        ("", "interval_seconds", "interval_seconds: or cron is required"),
    ]:
        status, answer, _ = api.get(f"/api/v1/schedules/preview?{query}")
        assert (status, answer) == (422, {"error": {"code": "invalid_field", "field": field,
                                                    "message": message}}), query
