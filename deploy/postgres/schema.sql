-- meshaudit: the AccessAudit store on PostgreSQL (meshaudit.store.type: postgres, docs/store.md).
-- Run once per database, as a user that may create the schema; then give the sidecars' user
-- SELECT, INSERT, UPDATE, DELETE on it (deploy/postgres/README.md). For another schema, replace public.
CREATE SCHEMA IF NOT EXISTS "public";

-- meshaudit's AccessAudit resources, one row per zone and name (docs/store.md).
CREATE TABLE IF NOT EXISTS "public".meshaudit_access_audits (
  zone       text        NOT NULL,
  name       text        NOT NULL,
  -- 1 on creation, one more on every change: optimistic concurrency (UpdateAccessAudit's version).
  version    bigint      NOT NULL CHECK (version >= 1),
  -- api: written through RuleService; file: by the --rules files (which delete what they stop defining).
  origin     text        NOT NULL CHECK (origin IN ('api', 'file')),
  rules      jsonb       NOT NULL,
  -- The user who made the change (the authenticated caller, or meshaudit:rules-files), and when.
  changed_by text        NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (zone, name)
);
