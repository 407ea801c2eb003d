-- A broadcast may start later than it is made: an emergency message of
-- the national chain (GY/T 384) names its StartTime. starts_at is that
-- time (NULL: at once). held marks a released broadcast whose start has
-- not come yet: it is not in the outbox, so no box has it; the broadcasts
-- service's releaser puts it there at starts_at (clearing held in the
-- same transaction), after a restart too.

-- +goose Up
ALTER TABLE broadcasts ADD COLUMN starts_at TEXT;
ALTER TABLE broadcasts ADD COLUMN held BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX broadcasts_held ON broadcasts (starts_at) WHERE held;

-- +goose Down
DROP INDEX broadcasts_held;
ALTER TABLE broadcasts DROP COLUMN held;
ALTER TABLE broadcasts DROP COLUMN starts_at;
