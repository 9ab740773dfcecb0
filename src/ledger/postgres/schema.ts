/**
 * The PostgreSQL ledger's schema, as numbered migrations; herbdl_meta holds
 * the number applied. The shape follows the SQLite ledger's (see
 * sqlite/schema.ts for the why of each table), with what many workers need:
 *
 * - workers: one row per run (machine, pid, since); `lease_until` is renewed
 *   by its heartbeat. A claim is ids.worker_id; it holds while that worker's
 *   lease does, so a heartbeat writes one row however many IDs it holds.
 * - ids_claimable: the partial index the claim statement walks (pending IDs
 *   by key, none parked), and nothing more; ids_retryable serves the retry
 *   claim; ids_blocked finds those parked behind a host, by host.
 * - publishing: intents carry their worker, so only a dead worker's intents
 *   are undone, by whoever takes them over.
 * - host_slots: a host's --per-host request slots, each owned by at most one
 *   worker; a worker sends requests to a host only on slots it owns, so all
 *   workers together never exceed --per-host there (host-budgets.ts).
 * - ids.blocked_host: an ID parked behind a host whose breaker is open: no
 *   worker holds it, waits for it, or reads it as it claims, in this run or
 *   a later one, until a run takes it up by host (to probe the host, or once
 *   it answers). hosts.blocked_ids counts the pending ones parked there.
 * - host_wants says which workers have work waiting for a host, for fair shares.
 * - Times are epoch ms from the server's clock (herbdl_now()), never a
 *   worker's: machines' clocks differ, a lease must not.
 *
 * The image indexes are left out of a bulk load (the first ingest into an
 * empty ledger) and built once at its end, as in SQLite.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE herbdl_meta (name text PRIMARY KEY, value text NOT NULL);
  CREATE FUNCTION herbdl_now() RETURNS bigint LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
  CREATE TABLE hosts (
    host_id serial PRIMARY KEY,
    host text NOT NULL UNIQUE,
    images bigint NOT NULL DEFAULT 0,
    pending bigint NOT NULL DEFAULT 0,
    done bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    breaker_open_until bigint,
    cooldown_until bigint,
    blocked_ids bigint
  );
  CREATE TABLE attributions (
    attribution_id serial PRIMARY KEY,
    type text NOT NULL,
    format text NOT NULL,
    license text NOT NULL,
    rights_holder text NOT NULL,
    publisher text NOT NULL,
    UNIQUE (type, format, license, rights_holder, publisher)
  );
  CREATE SEQUENCE images_image_id;
  CREATE TABLE images (
    image_id bigint NOT NULL DEFAULT nextval('images_image_id'),
    gbif_id bigint NOT NULL,
    image_index integer NOT NULL,
    url text NOT NULL,
    url_hash bigint NOT NULL,
    host_id integer NOT NULL,
    attribution_id integer NOT NULL,
    creator text NOT NULL,
    state smallint NOT NULL DEFAULT 0,
    error_code text,
    http_status integer,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint,
    updated_at bigint,
    final_url text,
    content_type text,
    bytes bigint,
    width integer,
    height integer,
    sha256 text,
    received_format text,
    file_index integer
  );
  CREATE UNIQUE INDEX images_pkey ON images (image_id);
  CREATE INDEX images_by_id ON images (gbif_id, image_index);
  CREATE INDEX images_by_url ON images (url_hash);
  CREATE TABLE image_parts (
    image_id bigint NOT NULL,
    part_index integer NOT NULL,
    file_index integer NOT NULL,
    url text NOT NULL,
    http_status integer,
    final_url text,
    content_type text,
    bytes bigint,
    width integer,
    height integer,
    sha256 text,
    received_format text,
    PRIMARY KEY (image_id, part_index)
  );
  CREATE TABLE workers (
    worker_id bigserial PRIMARY KEY,
    machine text NOT NULL,
    pid integer NOT NULL,
    since bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    lease_until bigint NOT NULL,
    stopped_at bigint,
    done bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    images_per_second real NOT NULL DEFAULT 0
  );
  CREATE TABLE ids (
    gbif_id bigint PRIMARY KEY,
    state smallint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint,
    updated_at bigint,
    worker_id bigint,
    set_aside boolean NOT NULL DEFAULT false
  );
  CREATE INDEX ids_claimable ON ids (gbif_id) WHERE state = 0;
  CREATE INDEX ids_retryable ON ids (next_attempt_at, gbif_id) WHERE state = 2;
  CREATE INDEX ids_by_worker ON ids (worker_id) WHERE worker_id IS NOT NULL;
  CREATE TABLE totals (name text PRIMARY KEY, value bigint NOT NULL);
  INSERT INTO totals (name, value) VALUES ('ids_done', 0), ('ids_failed', 0), ('ids_pending', 0);
  CREATE TABLE error_counts (
    code text NOT NULL,
    host_id integer NOT NULL,
    images bigint NOT NULL,
    PRIMARY KEY (code, host_id)
  );
  CREATE TABLE publishing (
    gbif_id bigint PRIMARY KEY,
    paths text NOT NULL,
    worker_id bigint NOT NULL
  );
  CREATE TABLE host_slots (
    host_id integer NOT NULL,
    slot integer NOT NULL,
    worker_id bigint,
    PRIMARY KEY (host_id, slot)
  );
  CREATE TABLE host_wants (
    worker_id bigint NOT NULL,
    host_id integer NOT NULL,
    PRIMARY KEY (host_id, worker_id)
  );
  INSERT INTO herbdl_meta (name, value) VALUES ('derived_complete', '1');
  `,
  // 2: exclusions, as in SQLite (migration 7 there): gbifIDs other datasets hold.
  `
  CREATE TABLE exclusions (gbif_id bigint PRIMARY KEY);
  INSERT INTO totals (name, value) VALUES ('ids_excluded', 0);
  `,
  // 3: derivatives, as in SQLite (migration 8 there): the widths a gbifID has every file at.
  `
  CREATE TABLE derivatives (gbif_id bigint NOT NULL, width integer NOT NULL, PRIMARY KEY (gbif_id, width));
  `,
  // 4: snapshots, as in SQLite (migration 9 there). A constant default adds the column without rewriting the table.
  `
  ALTER TABLE images ADD COLUMN snapshot integer NOT NULL DEFAULT 0;
  INSERT INTO totals (name, value) VALUES ('ids_removed', 0), ('images_removed', 0);
  INSERT INTO herbdl_meta (name, value) VALUES ('snapshot', '0');
  `,
  // 5: freshness, as in SQLite (migration 10 there). Nullable columns: added without rewriting the table.
  `
  ALTER TABLE images ADD COLUMN etag text, ADD COLUMN last_modified text, ADD COLUMN stored_at bigint, ADD COLUMN confirmed_at bigint, ADD COLUMN gone_at bigint;
  ALTER TABLE hosts ADD COLUMN measured_images bigint NOT NULL DEFAULT 0, ADD COLUMN measured_ms bigint NOT NULL DEFAULT 0, ADD COLUMN measured_cap integer NOT NULL DEFAULT 0;
  INSERT INTO totals (name, value) VALUES ('images_changed', 0), ('images_gone', 0);
  CREATE INDEX images_gone ON images (gbif_id) WHERE gone_at IS NOT NULL;
  `,
  // 6: fetch leases on URLs that pending gbifIDs share, so one worker fetches each (url-fetches.ts).
  `
  CREATE TABLE url_fetches (url_hash bigint NOT NULL, url text NOT NULL, worker_id bigint NOT NULL, taken_at bigint NOT NULL DEFAULT herbdl_now(), PRIMARY KEY (url_hash, url));
  `,
  // 7: the leaderboard's set-aside count, which each worker's heartbeat writes (workers.set_aside). It also made the
  // claim's indexes leave set-aside gbifIDs out and gave those of gone workers an index of their own (ids_set_aside);
  // migration 8 replaced all of that with parking, and builds the indexes of ids once, so a ledger that comes
  // through both does not build them twice (each build reads the whole of ids).
  `
  ALTER TABLE workers ADD COLUMN set_aside bigint NOT NULL DEFAULT 0;
  `,
  // 8: gbifIDs parked behind a host's open breaker (blocked_host), as in SQLite (migration 11 there), in place of
  // set-asides held by their worker: a worker let them go to others when it ended, and every run after it claimed
  // each again, read its images and set it aside again (137 s for 1.6M). Parked, no claim reads them until a run
  // takes them up by host (ids_blocked), to probe the host or once it answers. Held set-asides are let go, to be
  // parked again by the next run that meets them; hosts.blocked_ids becomes the count parked there.
  `
  ALTER TABLE ids ADD COLUMN blocked_host integer;
  UPDATE ids SET worker_id = NULL WHERE set_aside AND state IN (0, 2);
  DROP INDEX IF EXISTS ids_set_aside;
  DROP INDEX IF EXISTS ids_claimable;
  DROP INDEX IF EXISTS ids_retryable;
  DROP INDEX IF EXISTS ids_by_worker;
  ALTER TABLE ids DROP COLUMN set_aside;
  UPDATE hosts SET blocked_ids = NULL;
  CREATE INDEX ids_by_worker ON ids (worker_id) WHERE worker_id IS NOT NULL;
  CREATE INDEX ids_retryable ON ids (next_attempt_at, gbif_id) WHERE state = 2 AND blocked_host IS NULL;
  CREATE INDEX ids_blocked ON ids (blocked_host, gbif_id) WHERE blocked_host IS NOT NULL AND state IN (0, 2);
  `,
  // 9: counters recounted from their rows, once, as in SQLite (migration 12 there): a failed image that failed
  // again was counted again under its old code, and parked gbifIDs excluded, removed or adopted stayed counted on
  // their host. One pass over the images; the parked ones are read through ids_blocked (its condition stated as in SQLite's).
  `
  DELETE FROM error_counts;
  INSERT INTO error_counts (host_id, code, images)
    SELECT host_id, error_code, count(*) FROM images WHERE state = 2 AND error_code IS NOT NULL GROUP BY 1, 2;
  UPDATE hosts SET blocked_ids = NULL WHERE blocked_ids IS NOT NULL;
  UPDATE hosts h SET blocked_ids = c.n
    FROM (SELECT blocked_host, count(*) AS n FROM ids WHERE blocked_host IS NOT NULL AND state IN (0, 2) AND state = 0 GROUP BY 1) c
    WHERE h.host_id = c.blocked_host;
  `,
  // 10: a mark each connection writes just before the COMMIT of a transaction that wrote something, so a worker
  // whose COMMIT's answer was lost can tell whether it went through (connect.ts). The transaction id alone cannot
  // say after a crash: one that never reached the disk is given again to the next transaction after recovery.
  // One row per connection, overwritten by each of its transactions; rows of connections gone a day are pruned.
  `
  CREATE TABLE IF NOT EXISTS commit_marks (conn bigint PRIMARY KEY, seq bigint NOT NULL, at bigint NOT NULL);
  `,
  // 11: labels, as in SQLite (migration 13 there): fields of the download's occurrence file per gbifID, their values
  // a JSON array in the order of the fields herbdl_meta names (label_fields), none until a load ends (labels.ts).
  `
  CREATE TABLE IF NOT EXISTS labels (gbif_id bigint PRIMARY KEY, vals text NOT NULL);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Indexes a bulk load leaves out: images_by_id is built when it ends (ingest itself needs it). */
export const INGEST_INDEXES = {
  images_by_id: 'CREATE INDEX IF NOT EXISTS images_by_id ON images (gbif_id, image_index)',
} as const;
/**
 * Only runs need these (outcomes by image, shared URLs, the claim): built
 * when a run first opens a bulk-loaded ledger, as in SQLite. The claim's
 * index, built at the end of a 2M-row load, took a tenth of it; built by the
 * run, it also skips what `exclude` or `adopt` took out of the queue first.
 */
export const RUN_INDEXES = {
  images_pkey: 'CREATE UNIQUE INDEX IF NOT EXISTS images_pkey ON images (image_id)',
  images_by_url: 'CREATE INDEX IF NOT EXISTS images_by_url ON images (url_hash)',
  ids_claimable: 'CREATE INDEX IF NOT EXISTS ids_claimable ON ids (gbif_id) WHERE state = 0 AND blocked_host IS NULL',
} as const;
export const DERIVED_INDEXES = { ...INGEST_INDEXES, ...RUN_INDEXES } as const;
/** Partial indexes of ids that a new, pending and unclaimed gbifID does not enter: a bulk load leaves them in place. */
export const IDS_INDEXES_NEW_ROWS_SKIP = ['ids_retryable', 'ids_by_worker', 'ids_blocked'];

/** Moves the sequences of hosts and attributions past ids a bulk load gave them itself. */
export const SYNC_NUMBERED_SEQUENCES = [
  "SELECT setval('hosts_host_id_seq', greatest((SELECT max(host_id) FROM hosts), 1))",
  "SELECT setval('attributions_attribution_id_seq', greatest((SELECT max(attribution_id) FROM attributions), 1))",
] as const;
/**
 * Moves every serial sequence past ids given explicitly (migrate copies
 * them). Not after an ingest: its images take their ids from the sequence,
 * and finding the largest without the key (a bulk load builds it at the
 * first run) reads the whole table.
 */
export const SYNC_SEQUENCES = [...SYNC_NUMBERED_SEQUENCES, "SELECT setval('images_image_id', greatest((SELECT max(image_id) FROM images), 1))"] as const;

/** Serialises ingests into one database (pg_advisory_lock key): two at once would number the same gbifID's images twice. */
export const INGEST_LOCK = 1751478882; // 'herb' as an int
