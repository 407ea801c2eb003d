-- CAP 1.2 messages received (POST /api/v1/alerts/cap): every accepted
-- Alert, Update and Cancel, with the broadcast it started or the ones it
-- cancelled. (sender, identifier) is how CAP names a message and how its
-- Updates and Cancels refer to it; a message received twice is answered
-- from here and never broadcast twice.

-- +goose Up
CREATE TABLE cap_alerts (
    id           INTEGER PRIMARY KEY,
    sender       TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    sent         TEXT NOT NULL,
    msg_type     TEXT NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    status       TEXT NOT NULL, -- Actual, Exercise or Test
    broadcast_id BIGINT REFERENCES broadcasts (id), -- what an Alert or Update started
    cancelled    TEXT NOT NULL DEFAULT '[]',        -- JSON ids of the broadcasts an Update or Cancel cancelled
    received_at  TEXT NOT NULL,
    received_by  TEXT NOT NULL,
    raw          BLOB NOT NULL, -- the message as received (UTF-8 or GB18030)
    UNIQUE (sender, identifier)
);
CREATE INDEX cap_alerts_broadcast ON cap_alerts (broadcast_id) WHERE broadcast_id IS NOT NULL;

-- +goose Down
DROP INDEX cap_alerts_broadcast;
DROP TABLE cap_alerts;
