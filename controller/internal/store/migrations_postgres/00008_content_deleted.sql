-- PostgreSQL dialect of migrations/00007_content_deleted.sql (the same).
-- Clips and playlists can be deleted from the console. They are marked,
-- not removed: past broadcasts, schedules and the boxes' reports name
-- them, and a box may still fetch a clip it was sent. A marked clip or
-- playlist is left out of the lists and cannot be used again.

-- +goose Up
ALTER TABLE audio ADD COLUMN deleted_at TEXT;
ALTER TABLE playlists ADD COLUMN deleted_at TEXT;

-- +goose Down
ALTER TABLE playlists DROP COLUMN deleted_at;
ALTER TABLE audio DROP COLUMN deleted_at;
