-- PostgreSQL dialect of migrations/00005_audio_created_by.sql (the same).
-- Who put each clip in the library: the name of the user or API token that
-- uploaded it or had it spoken. Clips stored before this migration (and
-- those a CAP alert brought) have '' (unknown).

-- +goose Up
ALTER TABLE audio ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audio DROP COLUMN created_by;
