-- The national emergency-broadcast chain (GY/T 384), outbound: every
-- report for the upper platform (terminal inventory and states, broadcast
-- logs, answers to its requests) is signed and queued here before it is
-- sent, so it survives a restart and waits while the province is
-- unreachable; the sender takes the oldest unsent row, retries it with
-- back-off (next_attempt_at) and records the EBDResponse it got. A
-- broadcast is logged upward once (broadcast_id is unique). Sent rows are
-- kept a month for the console. Heartbeats are not queued: a late one
-- says nothing.
-- ebd_terminals holds the resource codes the province assigned to village
-- boxes; a box without one is reported as ebd.TerminalEBRID(village, 0).

-- +goose Up
CREATE TABLE ebd_outbound (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    ebdid           TEXT NOT NULL DEFAULT '',
    type            TEXT NOT NULL,
    broadcast_id    BIGINT,
    packet          BLOB,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    sent_at         TEXT,
    result_code     INTEGER,
    result_desc     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ebd_outbound_unsent ON ebd_outbound (seq) WHERE sent_at IS NULL;
CREATE UNIQUE INDEX ebd_outbound_broadcast ON ebd_outbound (broadcast_id) WHERE broadcast_id IS NOT NULL;
CREATE TABLE ebd_terminals (
    village TEXT PRIMARY KEY REFERENCES villages (code),
    ebr_id  TEXT NOT NULL UNIQUE
);

-- +goose Down
DROP TABLE ebd_terminals;
DROP INDEX ebd_outbound_broadcast;
DROP INDEX ebd_outbound_unsent;
DROP TABLE ebd_outbound;
