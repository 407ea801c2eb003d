-- An audit entry keeps the parameters of its action (a JSON object of
-- strings, such as {"expires_at":"2026-03-01T00:00:00Z"}) beside its
-- English detail, so the console can say it in Chinese and in county
-- time. Entries written before have none ('').

-- +goose Up
ALTER TABLE audit ADD COLUMN params TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit DROP COLUMN params;
