-- The transactional outbox: a change that boxes must hear of (a broadcast
-- released, a broadcast cancelled, a schedule made or withdrawn, box
-- settings) writes one outbox row in the same transaction as the change.
-- The controller's one publisher signs the commands the row causes
-- (storing them in retained and setting signed_at in one transaction),
-- publishes them, and sets sent_at once the broker has acknowledged them.
-- A crash at any point leaves a row the publisher finishes after restart.
-- ref is the broadcast's or schedule's id, or scope/name for settings.
-- retained.signed_until is when a stored command's signature expires, so
-- re-signing reads only the commands due instead of verifying them all.

-- +goose Up
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    ref        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    topics     TEXT NOT NULL DEFAULT '',
    signed_at  TEXT,
    sent_at    TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_unsent ON outbox (kind, ref) WHERE sent_at IS NULL;
ALTER TABLE retained ADD COLUMN signed_until TEXT;

-- +goose Down
ALTER TABLE retained DROP COLUMN signed_until;
DROP INDEX outbox_unsent;
DROP TABLE outbox;
