-- Users and roles, sessions, broadcasts under two-person control, hand
-- confirmations of villages without a box, box settings, and reports
-- that name a broadcast or belong to a test.
--
-- Portable as 00001: TEXT times in UTC, BOOLEAN columns, partial indexes.

-- +goose Up
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE, -- lower case
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'approver', 'viewer', 'village')),
    village       TEXT REFERENCES villages (code),
    password_hash TEXT NOT NULL, -- argon2id, PHC string format
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT, -- kept, so the audit log's names stay unambiguous
    CHECK ((role = 'village') = (village IS NOT NULL))
);

-- api_tokens gains the new roles, a village (for the village role), the
-- user a session belongs to and an expiry. Old staff tokens become
-- operator tokens. SQLite cannot change a CHECK, so the table is rebuilt.
CREATE TABLE api_tokens_new (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE, -- hex sha256 of the token
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'approver', 'viewer', 'village')),
    village    TEXT REFERENCES villages (code),
    user_id    BIGINT REFERENCES users (id), -- set for a login session
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    CHECK ((role = 'village') = (village IS NOT NULL))
);
INSERT INTO api_tokens_new (id, hash, name, role, created_at, revoked_at)
    SELECT id, hash, name, CASE role WHEN 'staff' THEN 'operator' ELSE role END, created_at, revoked_at
    FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE INDEX api_tokens_user ON api_tokens (user_id) WHERE user_id IS NOT NULL;

ALTER TABLE events ADD COLUMN broadcast_id BIGINT;
ALTER TABLE events ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX events_broadcast ON events (broadcast_id) WHERE broadcast_id IS NOT NULL;

-- state is what people decided: pending_approval, released (cleared to
-- send: approved, or needing no approval), rejected or cancelled. Whether
-- it is sending, in progress, done or expired follows from sent_at, the
-- time and the boxes' reports, and is never stored.
CREATE TABLE broadcasts (
    id                INTEGER PRIMARY KEY,
    audio_id          BIGINT REFERENCES audio (id),
    playlist_id       BIGINT REFERENCES playlists (id),
    text              TEXT NOT NULL DEFAULT '', -- what was spoken, for a text-to-speech broadcast
    playlist          TEXT NOT NULL,            -- JSON playlists.Playlist as the boxes get it
    targets           TEXT NOT NULL,            -- JSON playlists.Targets
    groups            TEXT NOT NULL,            -- JSON []api.Group it is published to
    priority          TEXT NOT NULL CHECK (priority IN ('routine', 'urgent', 'emergency')),
    severity          INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    event_type        TEXT NOT NULL DEFAULT '',
    repeat            INTEGER NOT NULL DEFAULT 0,
    volume            INTEGER NOT NULL DEFAULT 0,
    force_full_volume BOOLEAN NOT NULL DEFAULT FALSE,
    test              BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at        TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending_approval', 'released', 'rejected', 'cancelled')),
    needs_approval    BOOLEAN NOT NULL,
    created_at        TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_by_key    TEXT NOT NULL, -- user/<id> or token/<id>: the person, for the two-person rule
    decided_at        TEXT,
    decided_by        TEXT NOT NULL DEFAULT '',
    decision_reason   TEXT NOT NULL DEFAULT '',
    sent_at           TEXT,          -- first successful publication
    send_error        TEXT NOT NULL DEFAULT '',
    cancelled_at      TEXT,
    cancelled_by      TEXT NOT NULL DEFAULT '',
    CHECK ((audio_id IS NULL) <> (playlist_id IS NULL))
);

CREATE TABLE confirmations (
    id           INTEGER PRIMARY KEY,
    village      TEXT NOT NULL REFERENCES villages (code),
    schedule_id  BIGINT REFERENCES schedules (id),
    occurrence   TEXT, -- playlists.OccurrenceKey
    broadcast_id BIGINT REFERENCES broadcasts (id),
    played_at    TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    CHECK ((schedule_id IS NOT NULL AND occurrence IS NOT NULL AND broadcast_id IS NULL)
        OR (schedule_id IS NULL AND occurrence IS NULL AND broadcast_id IS NOT NULL))
);
CREATE UNIQUE INDEX confirmations_occurrence ON confirmations (schedule_id, occurrence, village) WHERE schedule_id IS NOT NULL;
CREATE UNIQUE INDEX confirmations_broadcast ON confirmations (broadcast_id, village) WHERE broadcast_id IS NOT NULL;

CREATE TABLE box_configs (
    scope      TEXT NOT NULL CHECK (scope IN ('township', 'village')),
    name       TEXT NOT NULL, -- the township's name or the village's code
    config     TEXT NOT NULL, -- JSON api.BoxConfig
    groups     TEXT NOT NULL, -- JSON []api.Group it was published to
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (scope, name)
);

CREATE INDEX audit_actor ON audit (actor);
CREATE INDEX audit_at ON audit (at);

-- +goose Down
DROP INDEX audit_at;
DROP INDEX audit_actor;
DROP TABLE box_configs;
DROP TABLE confirmations;
DROP TABLE broadcasts;
DROP INDEX events_broadcast;
ALTER TABLE events DROP COLUMN test;
ALTER TABLE events DROP COLUMN broadcast_id;
CREATE TABLE api_tokens_old (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
INSERT INTO api_tokens_old (id, hash, name, role, created_at, revoked_at)
    SELECT id, hash, name, CASE role WHEN 'admin' THEN 'admin' ELSE 'staff' END, created_at, revoked_at
    FROM api_tokens WHERE user_id IS NULL AND role IN ('admin', 'operator');
DROP TABLE api_tokens;
ALTER TABLE api_tokens_old RENAME TO api_tokens;
DROP TABLE users;
