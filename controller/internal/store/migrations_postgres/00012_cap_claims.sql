-- PostgreSQL dialect of migrations/00012_cap_claims.sql.
-- A CAP message is claimed before it is acted on: its row is inserted
-- (insert-if-absent on sender and identifier) when it arrives, with
-- in_flight naming the controller process carrying it out, and finished
-- (in_flight NULL) with what it did; a message refused is deleted, so it
-- can be sent again corrected. A copy that arrives while the first is in
-- flight is answered as a duplicate instead of waiting for a process
-- lock. The broadcast an Alert or Update starts names itself on the claim
-- in its own transaction, so a claim whose process died is taken over
-- only if it made nothing. Rows stored before are finished (NULL).

-- +goose Up
ALTER TABLE cap_alerts ADD COLUMN in_flight TEXT;

-- +goose Down
ALTER TABLE cap_alerts DROP COLUMN in_flight;
