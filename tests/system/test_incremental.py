"""Incremental extraction on a watermark column where many rows share one
value and new rows, some with the last value seen, arrive between runs:
nothing lost, nothing loaded twice."""
import datetime

import pytest

from conftest import MARIADB_ODBC, PG_ODBC
from test_matrix import Side
from test_load_modes import make_job, run


def origin_rows(pg, table):
    return pg.execute(f"SELECT id, ts, note FROM {table} ORDER BY id").fetchall()


def insert(pg, table, ids, ts):
    pg.execute(f"INSERT INTO {table} SELECT g, %s, 'row ' || g FROM generate_series(%s::int, %s::int) g",
               (ts, ids[0], ids[1]))


@pytest.mark.parametrize("dest", ["postgres", "sqlite", "mariadb"])
def test_shared_watermark_values(api, pg, tmp_path, dest):
    src, out = f"inc_src_{dest}", f"inc_out_{dest}"
    pg.execute(f"DROP TABLE IF EXISTS {src}")
    pg.execute(f"DROP TABLE IF EXISTS {out}")
    pg.execute(f"CREATE TABLE {src} (id int PRIMARY KEY, ts timestamp(3), note text)")
    t0 = datetime.datetime(2026, 1, 1, 12, 0, 0, 123000)
    for i in range(10):  # 10 timestamps, 100 rows each
        insert(pg, src, (i * 100 + 1, i * 100 + 100), t0 + datetime.timedelta(minutes=i))
    dest_odbc = {"postgres": PG_ODBC, "mariadb": MARIADB_ODBC,
                 "sqlite": f"Driver=SQLite3;Database={tmp_path}/d.db"}[dest]
    if dest == "mariadb":
        Side("mariadb", tmp_path).drop(out)
    job = make_job(api, PG_ODBC, dest_odbc, out, query=f"SELECT id, ts, note FROM {src};",
                   watermark_column="ts")
    assert job["watermark_column"] == "ts"

    def loaded_ids():
        if dest == "postgres":
            return [r[0] for r in pg.execute(f"SELECT id FROM {out} ORDER BY id").fetchall()]
        if dest == "mariadb":
            return [r[0] for r in Side("mariadb", tmp_path).execute(
                f"SELECT id FROM {out} ORDER BY id")]
        import sqlite3
        con = sqlite3.connect(f"{tmp_path}/d.db")
        try:
            return [r[0] for r in con.execute(f"SELECT id FROM {out} ORDER BY id")]
        finally:
            con.close()

    last = t0 + datetime.timedelta(minutes=9)
    done = run(api, job)  # rows at the newest value wait for the next run
    assert (done["status"], done["rows_written"]) == ("succeeded", 900), done
    assert done["watermark"].startswith("2026-01-01 12:09:00.123")
    assert loaded_ids() == list(range(1, 901))

    insert(pg, src, (2001, 2050), last)  # late rows sharing the boundary value
    insert(pg, src, (3001, 3030), last + datetime.timedelta(minutes=1))
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 150), done
    assert loaded_ids() == list(range(1, 1001)) + list(range(2001, 2051))

    done = run(api, job)  # nothing new below the newest value
    assert (done["status"], done["rows_written"]) == ("succeeded", 0), done

    insert(pg, src, (4001, 4001), last + datetime.timedelta(minutes=2))
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 30), done
    ids = loaded_ids()
    assert len(ids) == len(set(ids)) == 1080
    status, stored, _ = api.get(f"/api/v1/jobs/{job['id']}")
    assert stored["last_watermark"] == done["watermark"]
