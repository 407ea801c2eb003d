-- Idempotency-Key: a POST that creates a broadcast, schedule or playlist
-- may carry a key chosen by the client; the first request with a key
-- (per person) is carried out and its answer kept here, and a repeat of
-- it gets that answer instead of creating the thing twice. The row is
-- inserted before the work starts (status NULL while it runs), so two
-- concurrent repeats cannot both create. Rows are kept at least 24 h.

-- +goose Up
CREATE TABLE idempotency_keys (
    person       TEXT NOT NULL,  -- store.Token.Principal(): "user/3", "token/1"
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,  -- sha256 of method, path and body
    status       INTEGER,        -- NULL while the first request runs
    body         TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (person, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
