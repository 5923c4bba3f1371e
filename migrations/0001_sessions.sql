-- edge-session: the D1 sessions table (d1Store, table 'sessions'). Apply with `wrangler d1 migrations apply`,
-- or let store.migrate() create it: the same SQL (D1_MIGRATION in edge-session/stores/d1).
CREATE TABLE IF NOT EXISTS sessions (
  key TEXT PRIMARY KEY NOT NULL,
  data TEXT NOT NULL,
  flash TEXT NOT NULL DEFAULT '{}',
  meta TEXT NOT NULL,
  deadline INTEGER NOT NULL,
  user_key TEXT,
  handle TEXT
);
CREATE INDEX IF NOT EXISTS sessions_deadline ON sessions (deadline);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_key, deadline);
