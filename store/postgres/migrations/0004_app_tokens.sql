-- App-only access tokens (serversync.AppTokenStore): one row per profile and
-- resource, shared by every process on the database so that they ask the identity
-- provider once per token lifetime rather than once each. PutAppToken keeps the
-- row that expires later, in one INSERT … ON CONFLICT … WHERE.
CREATE TABLE IF NOT EXISTS app_tokens (
    id         text PRIMARY KEY,     -- the key, as given
    expires_at timestamptz NOT NULL, -- AppToken.Expiry
    data       bytea NOT NULL        -- the AppToken as a record, its AccessToken sealed
);
