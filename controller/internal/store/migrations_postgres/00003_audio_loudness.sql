-- PostgreSQL dialect of migrations/00003_audio_loudness.sql (the same).
-- The loudness of every clip (ITU-R BS.1770-4), measured at upload, and
-- the gain that brings it to the library's target: players apply the gain,
-- the stored samples stay as uploaded. Clips stored before this migration
-- were never measured: their columns stay NULL (unknown, not 0 dB) until
-- the same recording is uploaded again.

-- +goose Up
ALTER TABLE audio ADD COLUMN loudness_lufs DOUBLE PRECISION; -- integrated loudness, LUFS
ALTER TABLE audio ADD COLUMN peak_dbfs DOUBLE PRECISION;     -- true peak, dBFS
ALTER TABLE audio ADD COLUMN gain_db DOUBLE PRECISION;       -- to apply at playback, dB

-- +goose Down
ALTER TABLE audio DROP COLUMN gain_db;
ALTER TABLE audio DROP COLUMN peak_dbfs;
ALTER TABLE audio DROP COLUMN loudness_lufs;
