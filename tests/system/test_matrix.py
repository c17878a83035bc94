"""Every pair of SQLite, PostgreSQL and MariaDB as origin and destination: a
table of NULLs, non-ASCII text, exact decimals beyond double precision, dates,
timestamps with microseconds, binary and large text. The destination table is
created by the transfer from the origin's types; the whole table is compared
value by value, in a canonical form, with the origin."""
import datetime
import decimal
import random
import sqlite3

import psycopg
import pymysql
import pytest

from conftest import MARIADB_ODBC, MARIADB_PORT, PG_DSN, PG_ODBC
from test_load_modes import make_job, run

DBS = ["sqlite", "postgres", "mariadb"]
COLUMNS = "id, qty, name, amount, day, moment, payload, body"
DDL = {
    "sqlite": "CREATE TABLE {t} (id INTEGER, qty BIGINT, name TEXT, amount TEXT, day DATE, "
              "moment TIMESTAMP, payload BLOB, body TEXT)",
    "postgres": "CREATE TABLE {t} (id integer, qty bigint, name text, amount numeric(20,6), "
                "day date, moment timestamp(6), payload bytea, body text)",
    "mariadb": "CREATE TABLE {t} (id int, qty bigint, name varchar(200), amount decimal(20,6), "
               "day date, moment datetime(6), payload longblob, body longtext)",
}
NAMES = ["Zoë", "東京タワー", "emoji 🚀🎉", "O'Brien", 'say "hi"', "tab\there", "new\nline",
         "back\\slash", "Ærøskøbing", "plain"]


def rows(n=300, seed=11):
    rnd = random.Random(seed)
    base = datetime.datetime(2000, 1, 1)
    out = []
    for i in range(1, n + 1):
        cents = rnd.randint(-10**19 + 1, 10**19 - 1)
        amount = decimal.Decimal(cents).scaleb(-6)
        moment = base + datetime.timedelta(seconds=rnd.randint(0, 10**9),
                                           microseconds=rnd.randint(0, 999999))
        out.append((
            i,
            None if i % 11 == 0 else rnd.randint(-2**62, 2**62),
            None if i % 13 == 0 else f"{rnd.choice(NAMES)} {i}",
            None if i % 7 == 0 else amount,
            None if i % 9 == 0 else moment.date(),
            None if i % 8 == 0 else moment,
            None if i % 5 == 0 else bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64))),
            None if i % 3 else ("ß€" + "x" * rnd.randint(0, 200)) * (1 if i % 50 else 150),
        ))
    return out


def canon(row):
    i, qty, name, amount, day, moment, payload, body = row
    if isinstance(day, str):
        day = datetime.date.fromisoformat(day)
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    return (
        int(i), None if qty is None else int(qty), name,
        None if amount is None else decimal.Decimal(str(amount)).quantize(decimal.Decimal("1e-6")),
        day, None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
        None if payload is None else bytes(payload), body)


class Side:
    """One database as origin or destination: its ODBC string and raw access."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.path = str(tmp_path / f"{kind}.db")

    @property
    def odbc(self):
        return {"sqlite": f"Driver=SQLite3;Database={self.path}", "postgres": PG_ODBC,
                "mariadb": MARIADB_ODBC}[self.kind]

    def connect(self):
        if self.kind == "sqlite":
            return sqlite3.connect(self.path)
        if self.kind == "postgres":
            return psycopg.connect(PG_DSN, autocommit=True)
        return pymysql.connect(host="127.0.0.1", port=MARIADB_PORT, user="convutell",
                               password="convutell", database="convutell", charset="utf8mb4",
                               autocommit=True)

    def execute(self, sql, params=None, many=False):
        con = self.connect()
        try:
            cur = con.cursor()
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params) if params is not None else cur.execute(sql)
            result = cur.fetchall() if cur.description else None
            if self.kind == "sqlite":
                con.commit()
            return result
        finally:
            con.close()

    def drop(self, table):
        self.execute(f"DROP TABLE IF EXISTS {table}")

    def fill(self, table, data):
        self.drop(table)
        self.execute(DDL[self.kind].format(t=table))
        mark = "?" if self.kind == "sqlite" else "%s"
        values = data
        if self.kind == "sqlite":  # exact decimals and times as text, the SQLite way
            values = [(i, q, n, None if a is None else str(a), None if d is None else d.isoformat(),
                       None if m is None else m.isoformat(" "), p, b)
                      for i, q, n, a, d, m, p, b in data]
        self.execute(f"INSERT INTO {table} VALUES ({', '.join([mark] * 8)})", values, many=True)

    def read(self, table):
        return self.execute(f"SELECT {COLUMNS} FROM {table}")


# Each destination with its automatic load method (COPY for PostgreSQL, LOAD
# DATA for MariaDB, parameter arrays for SQLite) and, where that is a native
# path, with parameter arrays forced ("insert") as well.
PAIRS = [(o, d, m) for o in DBS for d in DBS
         for m in (["auto"] if d == "sqlite" else ["auto", "insert"])]


@pytest.mark.parametrize("origin,dest,method", PAIRS)
def test_pair(api, tmp_path, origin, dest, method):
    data = rows()
    src, dst = Side(origin, tmp_path), Side(dest, tmp_path / ".." / tmp_path.name)
    if origin == dest == "sqlite":
        dst.path = str(tmp_path / "dest.db")
    table_in, table_out = f"mx_in_{origin}_{dest}", f"mx_out_{origin}_{dest}_{method}"
    src.fill(table_in, data)
    dst.drop(table_out)
    load = {} if method == "auto" else {"load_method": method}
    job = make_job(api, src.odbc, dst.odbc, table_out, query=f"SELECT {COLUMNS} FROM {table_in}",
                   **load)
    assert job.get("load_method", "auto") == method
    done = run(api, job)
    assert (done["status"], done["rows_read"], done["rows_written"]) == (
        "succeeded", len(data), len(data)), done
    got, want = sorted(map(canon, dst.read(table_out))), sorted(map(canon, src.read(table_in)))
    assert want == sorted(map(canon, data))
    for g, w in zip(got, want):  # the first differing row, in full, if any
        assert g == w
    assert len(got) == len(want) == len(data)
