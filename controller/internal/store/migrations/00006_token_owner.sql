-- The person accountable for each API token, for the two-person rule: a
-- token minted by a user (with a session or with one of their own tokens)
-- records that user in owner_user_id; a token minted by a token of no user
-- records the root of that chain in owner_token_id (the installation's
-- bootstrap admin token, or a token made before this migration). A token
-- with neither is its own person. Sessions keep user_id, as before.

-- +goose Up
ALTER TABLE api_tokens ADD COLUMN owner_user_id BIGINT REFERENCES users (id);
ALTER TABLE api_tokens ADD COLUMN owner_token_id BIGINT REFERENCES api_tokens (id);

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN owner_token_id;
ALTER TABLE api_tokens DROP COLUMN owner_user_id;
