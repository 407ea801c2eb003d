-- PostgreSQL dialect of migrations/00011_idempotency_object.sql (the same).
-- An Idempotency-Key outlives a crash. The change a keyed request makes
-- names itself on the key (object, e.g. "broadcast/12") in the change's
-- own transaction, and the key records which controller process claimed
-- it (owner). A repeat after the claiming process died answers from the
-- object if the change committed, and carries the request out if it did
-- not; a repeat after an answer of 5xx whose change committed (a
-- broadcast stored but not yet on the broker) answers from the object too
-- and never makes it twice.

-- +goose Up
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN object TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN object;
ALTER TABLE idempotency_keys DROP COLUMN owner;
