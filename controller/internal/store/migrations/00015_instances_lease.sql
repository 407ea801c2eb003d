-- A second controller on the same database. Every controller process
-- names itself in instances (its id, where its pid means something, and
-- a heartbeat: expires_at, renewed every few seconds while it runs), so
-- that a claim it holds (an Idempotency-Key's owner, a CAP message's
-- in_flight) is taken over only once its process is really gone: its
-- heartbeat expired, or, on the same machine, its pid no longer runs.
-- leases holds the publisher role: the one controller whose name is in
-- holder, until expires_at (renewed by the holder), drains the outbox and
-- refreshes the retained commands. epoch grows by one at every change of
-- holder; the publisher's writes (signed, sent) check holder and epoch in
-- their own transaction, so a deposed holder can record nothing.

-- +goose Up
CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE instances;
