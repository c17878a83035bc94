"""Test data: a SQLite origin of mixed types and whole-table checksums that
compare an origin with a destination column by column, not just by count."""
import datetime
import decimal
import hashlib
import random
import sqlite3

import psycopg

NAMES = ["Zoë", "Ærøskøbing", "東京", "Ünïcödé “quotes”", "naïve café", "emoji 🚀 ok",
         "O'Brien", 'double "quoted"', "semi;colon", "tab\there", "line\nbreak", "plain"]

ORIGIN_DDL = """
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    qty BIGINT,
    name TEXT,
    amount DECIMAL(12,2),
    created_at TIMESTAMP,
    note TEXT
)"""

DEST_DDL = """
CREATE TABLE {table} (
    id integer,
    qty bigint,
    name text,
    amount numeric(12,2),
    created_at timestamp,
    note text
)"""

DECIMAL_COLUMN = 3  # amount
QUERY = "SELECT id, qty, name, amount, created_at, note FROM accounts"


def make_sqlite_origin(path, rows, seed=7):
    """Creates `rows` rows of mixed types, with NULLs in every nullable column."""
    rnd = random.Random(seed)
    base = datetime.datetime(2020, 1, 1)
    con = sqlite3.connect(path)
    con.execute("DROP TABLE IF EXISTS accounts")
    con.execute(ORIGIN_DDL)
    data = []
    for i in range(1, rows + 1):
        qty = None if i % 17 == 0 else rnd.randint(-2**40, 2**40)
        name = None if i % 23 == 0 else f"{rnd.choice(NAMES)} #{i}"
        cents = rnd.randint(-99999999, 99999999)
        amount = None if i % 19 == 0 else f"{cents // 100 if cents >= 0 else -((-cents) // 100)}.{abs(cents) % 100:02d}"
        ts = base + datetime.timedelta(seconds=rnd.randint(0, 5 * 365 * 86400))
        created = None if i % 29 == 0 else ts.strftime("%Y-%m-%d %H:%M:%S")
        note = None if i % 3 else "x" * rnd.randint(0, 300) + "ß"
        data.append((i, qty, name, amount, created, note))
    con.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)", data)
    con.commit()
    con.close()


def _canon(row):
    """One row in a form both databases agree on: text, exact decimals, ISO times."""
    out = []
    for i, v in enumerate(row):
        if v is None:
            out.append("\\N")
        elif i == DECIMAL_COLUMN:
            # SQLite's NUMERIC affinity stores 12.00 as the integer 12.
            out.append(str(decimal.Decimal(str(v)).quantize(decimal.Decimal("0.01"))))
        elif isinstance(v, datetime.datetime):
            out.append(v.strftime("%Y-%m-%d %H:%M:%S"))
        else:
            out.append(str(v))
    return "\x1f".join(out)


def checksum(rows):
    """(count, sha256) over the canonical rows in id order."""
    h = hashlib.sha256()
    n = 0
    for row in sorted(rows, key=lambda r: r[0]):
        h.update(_canon(row).encode())
        h.update(b"\x1e")
        n += 1
    return n, h.hexdigest()


def sqlite_checksum(path):
    con = sqlite3.connect(path)
    try:
        return checksum(con.execute(QUERY).fetchall())
    finally:
        con.close()


def pg_checksum(conn, table):
    with conn.cursor() as cur:
        cur.execute(psycopg.sql.SQL("SELECT id, qty, name, amount, created_at, note FROM {}")
                    .format(psycopg.sql.Identifier(table)))
        return checksum(cur.fetchall())
