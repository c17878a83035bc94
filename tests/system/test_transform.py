"""A Python transform between origin and destination: rows go to the script as
JSON lines and what it prints is loaded, with the load modes and the ledger of
a plain transfer; bad output fails the run naming its line, and the
destination keeps what it had."""
import psycopg
import pytest

from conftest import MARIADB_ODBC, PG_DSN, PG_ODBC
from test_load_modes import make_job, run
from test_matrix import Side

SUM = ("SELECT count(*), sum(('x' || substr(md5(row(t.*)::text), 1, 15))::bit(60)::bigint) "
       "FROM {} t")
UPPER = ("import json, sys\n"
         "for line in sys.stdin:\n"
         "    row = json.loads(line)\n"
         "    row['label'] = row['label'].upper()\n"
         "    print(json.dumps(row))\n")


@pytest.fixture(scope="module")
def source():
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tf_src")
        conn.execute("CREATE TABLE tf_src AS SELECT g AS id, md5(g::text) AS label, "
                     "(g * 0.5)::numeric(12,2) AS amount FROM generate_series(1, 100000) g")
        yield conn


def test_transform_upper_cases_a_column(api, pg, source):
    pg.execute("DROP TABLE IF EXISTS tf_dst")
    job = make_job(api, PG_ODBC, PG_ODBC, "tf_dst", query="SELECT id, label, amount FROM tf_src",
                   transform=UPPER)
    assert job["transform"] == UPPER
    done = run(api, job)
    assert (done["status"], done["rows_written"]) == ("succeeded", 100000), done
    pg.execute("DROP VIEW IF EXISTS tf_want")
    pg.execute("CREATE VIEW tf_want AS SELECT id, upper(label) AS label, amount FROM tf_src")
    assert pg.execute(SUM.format("tf_dst")).fetchone() == pg.execute(
        SUM.format("tf_want")).fetchone()


def test_transform_into_mariadb(api, source, tmp_path):
    """The same through LOAD DATA: every row compared."""
    dst = Side("mariadb", tmp_path)
    dst.drop("tf_maria")
    done = run(api, make_job(api, PG_ODBC, MARIADB_ODBC, "tf_maria",
                             query="SELECT id, label, amount FROM tf_src WHERE id <= 1000",
                             transform=UPPER))
    assert (done["status"], done["rows_written"]) == ("succeeded", 1000), done
    want = source.execute("SELECT id, upper(label), amount FROM tf_src WHERE id <= 1000 "
                          "ORDER BY id").fetchall()
    assert list(dst.execute("SELECT id, label, amount FROM tf_maria ORDER BY id")) == want


@pytest.mark.parametrize("script,message", [
    ("import sys, json\nfor n, line in enumerate(sys.stdin, 1):\n"
     "    print('garbage' if n == 17 else line.rstrip())\n",
     "transform output line 17: not a JSON object"),
    ("import sys, json\nfor line in sys.stdin:\n    row = json.loads(line)\n"
     "    row['extra'] = 1\n    print(json.dumps(row))\n",
     "transform output line 1: 4 fields, the destination takes the query's 3 columns"),
    ("import sys\nsys.exit(2)\n", "transform exited with status 2"),
])
def test_bad_transform_output_fails_the_run(api, pg, source, script, message):
    pg.execute("DROP TABLE IF EXISTS tf_bad")
    pg.execute("CREATE TABLE tf_bad (id int, label text, amount numeric(12,2))")
    pg.execute("INSERT INTO tf_bad VALUES (-1, 'kept', 0)")
    done = run(api, make_job(api, PG_ODBC, PG_ODBC, "tf_bad",
                             query="SELECT id, label, amount FROM tf_src", transform=script))
    assert (done["status"], done["error"]) == (
        "failed", {"code": "transform", "message": message}), done
    assert pg.execute("SELECT id, label FROM tf_bad").fetchall() == [(-1, "kept")]
