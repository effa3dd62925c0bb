-- App-only access tokens (serversync.AppTokenStore): one row per profile and
-- resource, shared by every process on the database so that they ask the identity
-- provider once per token lifetime. PutAppToken keeps the row that expires later.
CREATE TABLE IF NOT EXISTS app_tokens (
    id         TEXT PRIMARY KEY,  -- the key, as given
    expires_at INTEGER NOT NULL,  -- AppToken.Expiry, Unix microseconds
    data       BLOB NOT NULL      -- the AppToken as a record, its AccessToken sealed
) WITHOUT ROWID;
