-- PostgreSQL dialect of migrations/00013_ebd_inbound.sql.
-- The national emergency-broadcast chain (GY/T 384): every packet the
-- upper platform sent that passed its signature check is kept by EBDID,
-- so a packet received again is answered with the first answer and never
-- acted on twice; result_code is NULL while it is being acted on. A
-- broadcast made from an emergency message (EBM) carries its EBMID, once
-- (so a message carried by two packets is broadcast once), and so does a
-- broadcast made here, when it is reported upward.

-- +goose Up
CREATE TABLE ebd_inbound (
    ebdid        TEXT PRIMARY KEY,
    src          TEXT NOT NULL,
    type         TEXT NOT NULL,
    cert_sn      TEXT NOT NULL DEFAULT '',
    received_at  TEXT NOT NULL,
    result_code  INTEGER,
    result_desc  TEXT NOT NULL DEFAULT '',
    response     BYTEA,
    broadcast_id BIGINT
);
CREATE INDEX ebd_inbound_received ON ebd_inbound (received_at);
ALTER TABLE broadcasts ADD COLUMN ebm_id TEXT NOT NULL DEFAULT '';
ALTER TABLE broadcasts ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX broadcasts_ebm_id ON broadcasts (ebm_id) WHERE ebm_id <> '';

-- +goose Down
DROP INDEX broadcasts_ebm_id;
ALTER TABLE broadcasts DROP COLUMN source;
ALTER TABLE broadcasts DROP COLUMN ebm_id;
DROP INDEX ebd_inbound_received;
DROP TABLE ebd_inbound;
