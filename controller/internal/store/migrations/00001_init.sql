-- Cunxiang controller schema.
--
-- Portable on purpose: the same statements (with BIGINT identity columns
-- and TIMESTAMPTZ instead of TEXT times) are meant to serve a PostgreSQL
-- store later. Times are TEXT in UTC, fixed width
-- (2006-01-02T15:04:05.000000Z), so they sort and compare as text.

-- +goose Up
CREATE TABLE villages (
    code       TEXT PRIMARY KEY CHECK (length(code) = 12),
    name       TEXT NOT NULL,
    township   TEXT NOT NULL,
    lat        DOUBLE PRECISION NOT NULL,
    lon        DOUBLE PRECISION NOT NULL,
    device     TEXT NOT NULL CHECK (device IN ('agent', 'manual')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX villages_township ON villages (township);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE, -- hex sha256 of the token
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE enroll_tokens (
    hash       TEXT PRIMARY KEY, -- hex sha256 of the token
    village    TEXT NOT NULL REFERENCES villages (code),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX enroll_tokens_village ON enroll_tokens (village);

CREATE TABLE agents (
    village         TEXT PRIMARY KEY REFERENCES villages (code),
    mqtt_username   TEXT NOT NULL UNIQUE,
    secret_hash     TEXT NOT NULL, -- hex sha256 of a 256-bit random password
    enrolled_at     TEXT NOT NULL,
    agent_version   TEXT NOT NULL DEFAULT '',
    presence        TEXT CHECK (presence IN ('online', 'offline')),
    presence_at     TEXT,
    last_seen       TEXT,
    clock_offset_ms BIGINT NOT NULL DEFAULT 0,
    acked_seq       BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audio (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels    INTEGER NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE playlists (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    gap_ms     BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE playlist_items (
    playlist_id BIGINT NOT NULL REFERENCES playlists (id),
    position    INTEGER NOT NULL,
    audio_id    BIGINT NOT NULL REFERENCES audio (id),
    repeat      INTEGER NOT NULL,
    PRIMARY KEY (playlist_id, position)
);

CREATE TABLE schedules (
    id           INTEGER PRIMARY KEY,
    playlist_id  BIGINT NOT NULL REFERENCES playlists (id),
    targets      TEXT NOT NULL, -- JSON playlists.Targets
    timezone     TEXT NOT NULL,
    once_at      TEXT,
    recurring    TEXT,          -- JSON playlists.Recurrence
    groups       TEXT NOT NULL DEFAULT '[]', -- JSON []api.Group it was published to
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    withdrawn_at TEXT
);

CREATE TABLE events (
    village     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    type        TEXT NOT NULL,
    at          TEXT NOT NULL,
    schedule_id BIGINT,
    occurrence  TEXT, -- playlists.OccurrenceKey
    audio_id    BIGINT,
    reason      TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    PRIMARY KEY (village, seq)
);
CREATE INDEX events_occurrence ON events (schedule_id, occurrence);

CREATE TABLE retained (
    topic       TEXT PRIMARY KEY,
    payload     BLOB NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    schedule_id BIGINT NOT NULL DEFAULT 0,
    expires_at  TEXT NOT NULL
);

CREATE TABLE command_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO command_seq (id, seq) VALUES (1, 0);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT ''
);

-- The audit log is append-only: nothing may change or remove a row.
-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_no_delete;
DROP TRIGGER audit_no_update;
DROP TABLE audit;
DROP TABLE command_seq;
DROP TABLE retained;
DROP TABLE events;
DROP TABLE schedules;
DROP TABLE playlist_items;
DROP TABLE playlists;
DROP TABLE audio;
DROP TABLE agents;
DROP TABLE enroll_tokens;
DROP TABLE api_tokens;
DROP TABLE villages;
