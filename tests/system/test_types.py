"""Values that are easy to damage: binary, decimals beyond double precision,
large and non-ASCII text, dates and timestamps, NULLs, through both load
paths (COPY into PostgreSQL, parameter arrays into SQLite)."""
import datetime
import decimal
import sqlite3

from conftest import PG_ODBC
from test_load_modes import drop, make_job, run

BIG = ("Grüße, 世界 🚀 " * 9000)[:100_000]  # about 150 KB of UTF-8
ROWS = [
    (1, b"\x00\xff\x10\n\t\\", "12345678901234567890.1234567890", BIG, "2024-02-29",
     "2024-02-29 23:59:59.123456"),
    (2, None, None, None, None, None),
    (3, b"", "-0.0000000001", "", "1970-01-01", "1970-01-01 00:00:00"),
    (4, bytes(range(256)) * 40, "99999999999999999999.9999999999", "tab\tnew\nline\\back",
     "9999-12-31", "2038-01-19 03:14:08"),
]


def make_origin(path):
    con = sqlite3.connect(path)
    # The exact decimal is kept as TEXT: SQLite's NUMERIC affinity would round it.
    con.execute("CREATE TABLE tricky (id INTEGER, payload BLOB, exact TEXT, body TEXT, "
                "day DATE, moment TIMESTAMP)")
    con.executemany("INSERT INTO tricky VALUES (?, ?, ?, ?, ?, ?)", ROWS)
    con.commit()
    con.close()


QUERY = "SELECT id, payload, exact, body, day, moment FROM tricky"


def test_tricky_values_into_postgresql(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    make_origin(origin)
    drop(pg, "tricky")
    pg.execute("CREATE TABLE tricky (id int, payload bytea, exact numeric(30,10), body text, "
               "day date, moment timestamp(6))")
    done = run(api, make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "tricky",
                             query=QUERY))
    assert (done["status"], done["rows_written"]) == ("succeeded", 4), done
    got = pg.execute("SELECT * FROM tricky ORDER BY id").fetchall()
    want = [(i, p, None if e is None else decimal.Decimal(e), b,
             None if d is None else datetime.date.fromisoformat(d),
             None if m is None else datetime.datetime.fromisoformat(m))
            for i, p, e, b, d, m in ROWS]
    assert got == want


def test_tricky_values_into_sqlite(api, tmp_path):
    origin = str(tmp_path / "o.db")
    dest = str(tmp_path / "d.db")
    make_origin(origin)
    con = sqlite3.connect(dest)
    con.execute("CREATE TABLE tricky (id INTEGER, payload BLOB, exact TEXT, body TEXT, "
                "day DATE, moment TIMESTAMP)")
    con.close()
    done = run(api, make_job(api, f"Driver=SQLite3;Database={origin}",
                             f"Driver=SQLite3;Database={dest}", "tricky", query=QUERY))
    assert (done["status"], done["rows_written"]) == ("succeeded", 4), done
    con = sqlite3.connect(dest)
    got = con.execute(QUERY + " ORDER BY id").fetchall()
    con.close()
    assert got == ROWS


def test_value_longer_than_a_slot_fails_cleanly(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    con = sqlite3.connect(origin)
    con.execute("CREATE TABLE huge (id INTEGER, body TEXT)")
    con.execute("INSERT INTO huge VALUES (1, ?)", ("x" * (300 * 1024),))
    con.commit()
    con.close()
    drop(pg, "huge")
    done = run(api, make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "huge",
                             query="SELECT id, body FROM huge"))
    assert done["status"] == "failed"
    assert done["error"] == {"code": "origin_fetch", "message":
                             "column body: a value is longer than the 262143 bytes a transfer "
                             "holds per value"}
    assert pg.execute("SELECT count(*) FROM huge").fetchone() == (0,)
