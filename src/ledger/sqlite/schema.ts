/**
 * The SQLite ledger's schema, as numbered migrations. PRAGMA user_version
 * holds the number applied; a ledger from a newer herbdl is refused rather
 * than guessed at.
 *
 * Shape, and why:
 * - images: one row per (gbifID, imageIndex), appended in file order (rowid,
 *   so a bulk load writes sequentially), with the attribution its licence
 *   needs (its creator, and a reference into attributions for the rest) and
 *   its own outcome (state, HTTP status, error code, attempts,
 *   bytes, size, sha256, timestamps, next attempt time). images_by_id finds
 *   an ID's images; (gbifID, imageIndex) is unique by construction (the
 *   writer assigns indexes, and a bulk load checks them when it ends), not by
 *   a UNIQUE index, which a bulk load could not defer.
 * - images_by_url: a URL shared by many gbifIDs (up to 72 in real downloads)
 *   must be fetched once, so images are findable by a 53-bit hash of their
 *   URL (the URL itself is compared too).
 * - Both image indexes are dropped for a bulk load (the first ingest into an
 *   empty ledger) and built once by sorting: 50M random index inserts would
 *   each dirty a page, which is what makes naive loaders slow. images_by_id
 *   is built when the load ends; images_by_url, which only the downloader
 *   uses, when a run first opens the ledger (once; later ingests keep it).
 * - ids: one row per gbifID, the unit of work; `state` 0 pending, 1 done,
 *   2 failed. The pending scan walks the rowid order from a cursor; failed
 *   IDs due for a retry have a partial index. A fresh bulk load fills ids
 *   from images at the end for the same reason as images_by_url.
 * - hosts and totals: counters kept in the same transaction as the rows they
 *   count, so `status` reads a few thousand rows, never scans 50M.
 * - ledger_state: flags such as `derived_complete`, '0' while a bulk load's
 *   indexes and ids are not yet built (the next ingest finishes the job).
 */

export const MIGRATIONS: readonly string[] = [
  // 1: the first ledger.
  `
  CREATE TABLE hosts (
    host_id INTEGER PRIMARY KEY,
    host TEXT NOT NULL UNIQUE,
    images INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    breaker_open_until INTEGER,
    cooldown_until INTEGER
  );
  CREATE TABLE images (
    image_id INTEGER PRIMARY KEY,
    gbif_id INTEGER NOT NULL,
    image_index INTEGER NOT NULL,
    url TEXT NOT NULL,
    url_hash INTEGER NOT NULL,
    host_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    format TEXT NOT NULL,
    license TEXT NOT NULL,
    rights_holder TEXT NOT NULL,
    creator TEXT NOT NULL,
    publisher TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    updated_at INTEGER,
    final_url TEXT,
    content_type TEXT,
    bytes INTEGER,
    width INTEGER,
    height INTEGER,
    sha256 TEXT
  );
  CREATE INDEX images_by_id ON images(gbif_id, image_index);
  CREATE INDEX images_by_url ON images(url_hash);
  CREATE TABLE ids (
    gbif_id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    updated_at INTEGER
  );
  CREATE INDEX ids_failed ON ids(next_attempt_at) WHERE state = 2;
  CREATE TABLE totals (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO totals(name, value) VALUES ('ids_pending', 0), ('ids_done', 0), ('ids_failed', 0);
  CREATE TABLE error_counts (
    code TEXT NOT NULL,
    host_id INTEGER NOT NULL,
    images INTEGER NOT NULL,
    PRIMARY KEY (code, host_id)
  ) WITHOUT ROWID;
  CREATE TABLE ledger_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO ledger_state(name, value) VALUES ('derived_complete', '1');
  `,
  // 2: publishing intents. A gbifID's files are renamed into place one by one;
  // if the run dies half-way, the next run removes them, so no partial gbifID
  // is ever left in the tree.
  `
  CREATE TABLE publishing (
    gbif_id INTEGER PRIMARY KEY,
    paths TEXT NOT NULL
  );
  `,
  // 3: the format a host sent, before any conversion to JPEG.
  `
  ALTER TABLE images ADD COLUMN received_format TEXT;
  `,
  // 4: IIIF. An identifier that is a manifest (or an image service) becomes
  // several images, each with its own file; image_parts holds them, in canvas
  // order. file_index is the NN a done image's file has: NNs run over a
  // gbifID's images in order with a manifest's canvases in its place, so an
  // image after a manifest is not named by its imageIndex.
  `
  ALTER TABLE images ADD COLUMN file_index INTEGER;
  CREATE TABLE image_parts (
    image_id INTEGER NOT NULL,
    part_index INTEGER NOT NULL,
    file_index INTEGER NOT NULL,
    url TEXT NOT NULL,
    http_status INTEGER,
    final_url TEXT,
    content_type TEXT,
    bytes INTEGER,
    width INTEGER,
    height INTEGER,
    sha256 TEXT,
    received_format TEXT,
    PRIMARY KEY (image_id, part_index)
  ) WITHOUT ROWID;
  `,
  // 5: attributions. Type, format, licence, rights holder and publisher repeat
  // across a dataset's rows; kept once each, an image row is a third the size
  // and an insert binds two strings, not seven (the creator stays per image:
  // it can be a different person on every row).
  `
  CREATE TABLE attributions (
    attribution_id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    format TEXT NOT NULL,
    license TEXT NOT NULL,
    rights_holder TEXT NOT NULL,
    publisher TEXT NOT NULL,
    UNIQUE (type, format, license, rights_holder, publisher)
  );
  INSERT OR IGNORE INTO attributions(type, format, license, rights_holder, publisher)
    SELECT type, format, license, rights_holder, publisher FROM images;
  ALTER TABLE images ADD COLUMN attribution_id INTEGER NOT NULL DEFAULT 0;
  UPDATE images SET attribution_id = (
    SELECT a.attribution_id FROM attributions a
    WHERE a.type = images.type AND a.format = images.format AND a.license = images.license
      AND a.rights_holder = images.rights_holder AND a.publisher = images.publisher);
  ALTER TABLE images DROP COLUMN type;
  ALTER TABLE images DROP COLUMN format;
  ALTER TABLE images DROP COLUMN license;
  ALTER TABLE images DROP COLUMN rights_holder;
  ALTER TABLE images DROP COLUMN publisher;
  `,
  // 6: how many pending gbifIDs the last run found blocked by a host's open
  // breaker. Counting them in status would scan every image of the host.
  `
  ALTER TABLE hosts ADD COLUMN blocked_ids INTEGER;
  `,
  // 7: exclusions. gbifIDs other datasets hold, as the user listed them (ingested
  // or not yet): an ingest marks them excluded as it meets them. A rowid table
  // keyed by the ID, so a sorted batch of IDs is appended, not scattered.
  `
  CREATE TABLE exclusions (gbif_id INTEGER PRIMARY KEY);
  INSERT INTO totals(name, value) VALUES ('ids_excluded', 0);
  `,
  // 8: derivatives (run --derive, herbdl derive): the widths a gbifID has every
  // file at, all or nothing like its originals. Keyed by gbifID first: a publish
  // replaces one ID's rows, and derive and pack walk IDs in order. Counted per
  // width in totals ('derived_w<width>'), so status reads no rows of it.
  `
  CREATE TABLE derivatives (gbif_id INTEGER NOT NULL, width INTEGER NOT NULL, PRIMARY KEY (gbif_id, width)) WITHOUT ROWID;
  `,
  // 9: snapshots (ingest --snapshot): the last snapshot that listed each image
  // (ledger_state 'snapshot' numbers them), so the images a newer export lacks
  // are found in one pass when it ends; state 4, removed, for them and for
  // gbifIDs left with no image; counters for both.
  `
  ALTER TABLE images ADD COLUMN snapshot INTEGER NOT NULL DEFAULT 0;
  INSERT INTO totals(name, value) VALUES ('ids_removed', 0), ('images_removed', 0);
  INSERT INTO ledger_state(name, value) VALUES ('snapshot', '0');
  `,
  // 10: freshness (herbdl recheck). Each stored image's validators (ETag,
  // Last-Modified) for conditional requests; when it was first stored and last
  // confirmed (epoch ms; an image stored before this schema counts from its
  // updated_at), and when its host said it is gone (404, 410). Each host's
  // measured rate at its politeness limits (images, milliseconds of requests,
  // the cap they ran at), for recheck --plan. Counters of changed and gone images.
  `
  ALTER TABLE images ADD COLUMN etag TEXT;
  ALTER TABLE images ADD COLUMN last_modified TEXT;
  ALTER TABLE images ADD COLUMN stored_at INTEGER;
  ALTER TABLE images ADD COLUMN confirmed_at INTEGER;
  ALTER TABLE images ADD COLUMN gone_at INTEGER;
  ALTER TABLE hosts ADD COLUMN measured_images INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE hosts ADD COLUMN measured_ms INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE hosts ADD COLUMN measured_cap INTEGER NOT NULL DEFAULT 0;
  INSERT INTO totals(name, value) VALUES ('images_changed', 0), ('images_gone', 0);
  CREATE INDEX images_gone ON images(gbif_id) WHERE gone_at IS NOT NULL;
  `,
  // 11: gbifIDs parked behind a host's open breaker (blocked_host, its host_id),
  // kept across runs: the claims pass them by, so a later run over an export
  // whose dead hosts hold millions reads none of their images; a run takes
  // them up by host (ids_blocked) to probe the host, or once it answers
  // (-1 while the run holds one it took up: download-statements.ts, TAKEN_UP).
  // hosts.blocked_ids becomes the count of pending ones parked there; the
  // counts the last run had noted are of gbifIDs not parked: cleared.
  `
  ALTER TABLE ids ADD COLUMN blocked_host INTEGER;
  CREATE INDEX ids_blocked ON ids(blocked_host, gbif_id) WHERE blocked_host IS NOT NULL AND state IN (0, 2);
  UPDATE hosts SET blocked_ids = NULL;
  `,
  // 12: counters recounted from their rows, once. Until this schema, a failed
  // image that failed again (each retry-failed run) was counted again under
  // its old code, and parked gbifIDs excluded, removed or adopted stayed
  // counted on their host. One pass over the images (their failures by host
  // and code); the parked ones are read through ids_blocked (its condition is
  // repeated beside state = 0: SQLite uses a partial index only for a query
  // that states its condition).
  `
  DELETE FROM error_counts;
  INSERT INTO error_counts(code, host_id, images)
    SELECT error_code, host_id, count(*) FROM images WHERE state = 2 AND error_code IS NOT NULL GROUP BY error_code, host_id;
  UPDATE hosts SET blocked_ids = (SELECT NULLIF(count(*), 0) FROM ids
    WHERE ids.blocked_host = hosts.host_id AND ids.blocked_host IS NOT NULL AND ids.state IN (0, 2) AND ids.state = 0);
  `,
  // 13: labels, fields of the download's occurrence file per gbifID (herbdl labels; ledger/labels.ts): their
  // values a JSON array in the order of the fields ledger_state names (label_fields), none until a load ends.
  `
  CREATE TABLE IF NOT EXISTS labels (gbif_id INTEGER PRIMARY KEY, vals TEXT NOT NULL);
  `,
];

/** Indexes a bulk load drops and builds again, by sorting, when it ends. */
export const DERIVED_INDEXES = ['images_by_id', 'images_by_url'] as const;
/** Needed by ingest itself (an ID's images); built when a bulk load ends. */
export const CREATE_ID_INDEX = 'CREATE INDEX IF NOT EXISTS images_by_id ON images(gbif_id, image_index)';
/** Needed only by the downloader (shared URLs); built when a run first opens a bulk-loaded ledger. */
export const CREATE_URL_INDEX = 'CREATE INDEX IF NOT EXISTS images_by_url ON images(url_hash)';

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Numeric states as stored; the ledger interface speaks words. */
export { STATE, STATE_NAME } from '../rows.js';

// The URL hash images_by_url keys by; computed where rows are read (see url-hash.ts).
export { urlHash } from '../../input/url-hash.js';
