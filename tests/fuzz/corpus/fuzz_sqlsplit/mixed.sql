CREATE TABLE t (a text);INSERT INTO t VALUES ('a;b'), ('it''s;');-- c;
UPDATE t SET a = "x;" || a;/* ; */SELECT $$a;b$$, $body$ ; $body$