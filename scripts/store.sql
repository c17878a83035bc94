-- scripts/store.sql - the PostgreSQL side of the local stack's MongoDB-protocol
-- store (FerretDB 1.24 with its PostgreSQL backend), applied by scripts/stack
-- to the database convutell_store on every `up`. Idempotent.
--
-- FerretDB keeps each collection as a table of one jsonb column, _jsonb, named
-- <collection>_<8 hex digits> in a schema named after the MongoDB database. It
-- pushes a top-level equality down as `WHERE _jsonb->'field' @> '"value"'` (and
-- everything else is filtered after a full read). The indexes its createIndexes
-- makes are btrees on (_jsonb->'field'), which `@>` cannot use; a GIN index on
-- the same expression can. So every table FerretDB creates gets, from the event
-- trigger below, a GIN index on _id and on the fields the services look
-- documents up by. Measured through pymongo at 100,000 documents: a find by _id
-- 44 ms without, 1 ms with; an update by _id 48 ms and 2 ms; a job's runs 49 ms
-- and 4 ms. The planner must also plan each statement with its values (FerretDB
-- sends one prepared text for all fields, so a generic plan matches no index):
-- plan_cache_mode = force_custom_plan is set on the database by scripts/stack.
--
-- The GIN indexes are built without the pending list (fastupdate = off): with
-- it, every look-up also reads the list of recent entries linearly, and under a
-- stream of small jobs that list stays long. Measured in the throughput bench
-- (20,000 jobs): a find of a run by _id 1.15 ms with the list, 0.03 ms without.

-- The fields each collection is looked up by, besides _id.
CREATE OR REPLACE FUNCTION convutell_store_keys(collection text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE collection
        WHEN 'runs' THEN ARRAY['job_id', 'day', 'run_id', 'buckets']
        WHEN 'active_runs' THEN ARRAY['job_id']
        WHEN 'queued_runs' THEN ARRAY['job_id']
        WHEN 'events' THEN ARRAY['run_id', 'day']
        WHEN 'notifications' THEN ARRAY['project_id', 'day', 'buckets']
        WHEN 'leases' THEN ARRAY['state', 'day']
        WHEN 'ticks' THEN ARRAY['claimer', 'day']
        WHEN 'jobs' THEN ARRAY['project_id', 'scheduled']
        ELSE ARRAY[]::text[]
    END
$$;

-- Gives one FerretDB table its GIN indexes (a table without _jsonb is left alone).
CREATE OR REPLACE FUNCTION convutell_store_index_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel text;
    nsp text;
    collection text;
    k text;
BEGIN
    SELECT c.relname, n.nspname INTO rel, nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = tbl AND attname = '_jsonb' AND NOT attisdropped) THEN
        RETURN;
    END IF;
    collection := substring(rel FROM '^(.*)_[0-9a-f]{8}$');
    FOREACH k IN ARRAY ARRAY['_id'] || convutell_store_keys(coalesce(collection, '')) LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb->%L) jsonb_path_ops)'
                       ' WITH (fastupdate = off)',
                       'cv_gin_' || left(md5(rel || '/' || k), 24), nsp, rel, k);
    END LOOP;
END
$$;

-- FerretDB answers createIndexes with a btree on (_jsonb->'field'), which no
-- statement it sends can use: it looks fields up with @> and only _id with =.
-- PostgreSQL would still write every one of them on every insert and update
-- (an update of a run or lease wrote seven indexes, three of them these), so a
-- btree that is not unique is replaced by an empty one of the same name (WHERE
-- false: never written, still there for FerretDB to drop). Unique ones (_id,
-- FerretDB's own metadata) keep their work. The services' index list stays
-- what MongoDB, which uses them, gets.
CREATE OR REPLACE FUNCTION convutell_store_idle_index(idx regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT ic.relname AS name, n.nspname AS nsp, tc.relname AS tbl INTO r
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_class tc ON tc.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = tc.relnamespace
      JOIN pg_am am ON am.oid = ic.relam
     WHERE i.indexrelid = idx AND am.amname = 'btree' AND NOT i.indisunique
       AND i.indpred IS NULL AND ic.relname NOT LIKE 'cv\_%'
       AND EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = tc.oid AND a.attname = '_jsonb' AND NOT a.attisdropped);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP INDEX %I.%I', r.nsp, r.name);
    EXECUTE format('CREATE INDEX %I ON %I.%I ((1)) WHERE false', r.name, r.nsp, r.tbl);
END
$$;

-- One event trigger for both: a table FerretDB creates gets its GIN indexes, an
-- index it creates is left empty when no statement of its can use it.
CREATE OR REPLACE FUNCTION convutell_store_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT command_tag, objid FROM pg_event_trigger_ddl_commands()
                WHERE object_type IN ('table', 'index') LOOP
        IF obj.command_tag = 'CREATE TABLE' THEN
            PERFORM convutell_store_index_table(obj.objid::regclass);
        ELSIF obj.command_tag = 'CREATE INDEX' THEN
            PERFORM convutell_store_idle_index(obj.objid::regclass);
        END IF;
    END LOOP;
END
$$;

-- Made again on every run, so a store from before (one trigger per tag) ends
-- with this one.
DROP EVENT TRIGGER IF EXISTS convutell_store_index;
DROP EVENT TRIGGER IF EXISTS convutell_store_idle;
DROP EVENT TRIGGER IF EXISTS convutell_store_ddl;
DROP FUNCTION IF EXISTS convutell_store_on_create();
DROP FUNCTION IF EXISTS convutell_store_on_index();
DROP FUNCTION IF EXISTS convutell_store_shared_key(text);
CREATE EVENT TRIGGER convutell_store_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE INDEX') EXECUTE FUNCTION convutell_store_on_ddl();

-- Indexes made before the trigger existed.
SELECT convutell_store_idle_index(c.oid) FROM pg_class c WHERE c.relkind = 'i';

-- Tables made before the trigger existed (a store from an older stack).
SELECT convutell_store_index_table(c.oid)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = '_jsonb'
 WHERE c.relkind = 'r';

-- Indexes made before they were built without a pending list: turned off, and
-- the list they hold merged into the index.
DO $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN SELECT c.oid::regclass FROM pg_class c
                WHERE c.relkind = 'i' AND c.relname LIKE 'cv\_gin\_%'
                  AND NOT coalesce(c.reloptions @> ARRAY['fastupdate=off'], false) LOOP
        EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', idx);
        PERFORM gin_clean_pending_list(idx);
    END LOOP;
END
$$;
