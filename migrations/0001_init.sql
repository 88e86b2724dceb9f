-- 0001_init: the federation registry, call records, the ENUM zone and the
-- shared rate-limit table.
--
-- Portable SQL for PostgreSQL and SQLite. The loader in peering-store applies
-- a tiny, documented dialect translation (see migrations/README.md):
--   * lines between `-- @postgres-only` and `-- @end` run on PostgreSQL only,
--   * lines between `-- @sqlite-only` and `-- @end` run on SQLite only,
--   * `BIGSERIAL PRIMARY KEY` becomes `INTEGER PRIMARY KEY AUTOINCREMENT` on
--     SQLite.
-- Timestamps are BIGINT milliseconds since the Unix epoch; lists of tokens
-- (attestation levels, header names) are comma-separated TEXT; networks are
-- TEXT in CIDR notation, validated by the application.

-- A single row counting registry changes. Triggers bump it on every write to
-- a registry table, so a node can detect changes made behind its back by
-- comparing one integer.
CREATE TABLE registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

-- Members: the SIP service providers of the federation.
CREATE TABLE members (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    -- Where calls terminating at this member are sent (a SIP URI), if the
    -- node routes to it directly rather than through ENUM.
    sip_target TEXT
);

-- SIP domains a member sends from and answers for (matched against the TLS
-- peer certificate and From/PAI hosts).
CREATE TABLE member_domains (
    member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    PRIMARY KEY (member, domain)
);
CREATE UNIQUE INDEX member_domains_domain ON member_domains (domain);

-- Certificate identities (subjectAltName DNS or URI entries) that identify a
-- member's TLS connections.
CREATE TABLE member_identities (
    member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    PRIMARY KEY (member, identity)
);

-- Source networks of legacy UDP/TCP peers, in CIDR notation.
CREATE TABLE member_networks (
    member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    network TEXT NOT NULL,
    PRIMARY KEY (member, network)
);

-- E.164 number ranges a member owns, by prefix (digits only, no '+').
CREATE TABLE number_ranges (
    member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    may_originate BOOLEAN NOT NULL DEFAULT TRUE,
    terminates BOOLEAN NOT NULL DEFAULT TRUE,
    -- Lower is preferred when several members terminate the same number.
    preference INTEGER NOT NULL DEFAULT 100,
    PRIMARY KEY (member, prefix)
);
CREATE INDEX number_ranges_prefix ON number_ranges (prefix);

-- Agreements: `from_member` may send calls to `to_member`.
CREATE TABLE agreements (
    from_member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    to_member TEXT NOT NULL REFERENCES members (name) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    require_identity BOOLEAN NOT NULL DEFAULT FALSE,
    -- Comma-separated SHAKEN attestation levels accepted (A,B,C); empty means any.
    accepted_attestation TEXT NOT NULL DEFAULT '',
    -- Header rules applied towards the terminating member.
    topology_hiding BOOLEAN NOT NULL DEFAULT FALSE,
    strip_headers TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (from_member, to_member)
);

-- Limits per member (over the whole federation) and per source address.
CREATE TABLE member_limits (
    member TEXT PRIMARY KEY REFERENCES members (name) ON DELETE CASCADE,
    cps INTEGER,
    concurrent INTEGER,
    source_cps INTEGER,
    source_concurrent INTEGER
);

-- Block and allow lists of caller numbers. scope '' is federation-wide,
-- otherwise the name of the member whose calls the entry applies to.
CREATE TABLE caller_lists (
    scope TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    -- Digits of the caller number or prefix, no '+'; `exact` selects which.
    pattern TEXT NOT NULL,
    exact BOOLEAN NOT NULL DEFAULT TRUE,
    -- SIP status sent when a block entry matches.
    status INTEGER NOT NULL DEFAULT 603,
    reason TEXT NOT NULL DEFAULT '',
    expires_at BIGINT,
    PRIMARY KEY (scope, kind, pattern)
);

-- Source addresses banned federation-wide (CIDR).
CREATE TABLE address_bans (
    network TEXT PRIMARY KEY,
    reason TEXT NOT NULL DEFAULT '',
    expires_at BIGINT
);

-- The federation's ENUM zone: single numbers and ranges, each NAPTR record a
-- row, with the member that owns it. `member` is deliberately not a foreign
-- key: zones are often provisioned (or imported) before the owner is
-- onboarded in the registry. Removing a member through the store removes
-- its entries too.
CREATE TABLE enum_entries (
    id BIGSERIAL PRIMARY KEY,
    -- Digits of the number or range prefix, no '+'.
    prefix TEXT NOT NULL,
    is_range BOOLEAN NOT NULL DEFAULT FALSE,
    member TEXT NOT NULL,
    naptr_order INTEGER NOT NULL,
    naptr_preference INTEGER NOT NULL,
    flags TEXT NOT NULL DEFAULT 'u',
    services TEXT NOT NULL DEFAULT 'E2U+sip',
    regexp TEXT NOT NULL DEFAULT '',
    replacement TEXT NOT NULL DEFAULT '.',
    ttl INTEGER NOT NULL DEFAULT 300
);
CREATE INDEX enum_entries_prefix ON enum_entries (prefix);
CREATE INDEX enum_entries_member ON enum_entries (member);

-- Call records, written once per finished call.
CREATE TABLE call_records (
    id BIGSERIAL PRIMARY KEY,
    node TEXT NOT NULL,
    call_id TEXT NOT NULL,
    from_member TEXT,
    to_member TEXT,
    caller TEXT NOT NULL DEFAULT '',
    callee TEXT NOT NULL DEFAULT '',
    source_addr TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attestation TEXT,
    spit_score INTEGER,
    spit_decision TEXT
);
CREATE INDEX call_records_started ON call_records (started_at);
CREATE INDEX call_records_caller ON call_records (caller, started_at);

-- Federation-wide rate limits (docs/rate-limits.md): every node reports its
-- recent demand and current usage per limit key here every ~150 ms and takes
-- a share of the global budget proportional to its demand.
CREATE TABLE rate_usage (
    limit_key TEXT NOT NULL,
    node TEXT NOT NULL,
    -- Attempts per second seen by this node (smoothed), times 1000.
    demand_milli BIGINT NOT NULL,
    -- Calls currently in progress on this node.
    concurrent BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (limit_key, node)
);

-- Change notification. Every write to a registry table bumps
-- registry_version; on PostgreSQL it also sends NOTIFY peering_registry with
-- the table name as payload, so nodes reload within seconds.
-- @postgres-only
CREATE FUNCTION peering_registry_changed() RETURNS trigger AS $$
BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = 1;
    PERFORM pg_notify('peering_registry', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER members_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER member_domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_domains
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER member_identities_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_identities
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER member_networks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_networks
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER number_ranges_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON number_ranges
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER agreements_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agreements
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER member_limits_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_limits
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER caller_lists_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON caller_lists
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER address_bans_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON address_bans
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
CREATE TRIGGER enum_entries_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON enum_entries
    FOR EACH STATEMENT EXECUTE FUNCTION peering_registry_changed();
-- @end
-- @sqlite-only
CREATE TRIGGER members_ins AFTER INSERT ON members BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER members_upd AFTER UPDATE ON members BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER members_del AFTER DELETE ON members BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_domains_ins AFTER INSERT ON member_domains BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_domains_upd AFTER UPDATE ON member_domains BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_domains_del AFTER DELETE ON member_domains BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_identities_ins AFTER INSERT ON member_identities BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_identities_upd AFTER UPDATE ON member_identities BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_identities_del AFTER DELETE ON member_identities BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_networks_ins AFTER INSERT ON member_networks BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_networks_upd AFTER UPDATE ON member_networks BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_networks_del AFTER DELETE ON member_networks BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER number_ranges_ins AFTER INSERT ON number_ranges BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER number_ranges_upd AFTER UPDATE ON number_ranges BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER number_ranges_del AFTER DELETE ON number_ranges BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER agreements_ins AFTER INSERT ON agreements BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER agreements_upd AFTER UPDATE ON agreements BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER agreements_del AFTER DELETE ON agreements BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_limits_ins AFTER INSERT ON member_limits BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_limits_upd AFTER UPDATE ON member_limits BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER member_limits_del AFTER DELETE ON member_limits BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER caller_lists_ins AFTER INSERT ON caller_lists BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER caller_lists_upd AFTER UPDATE ON caller_lists BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER caller_lists_del AFTER DELETE ON caller_lists BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER address_bans_ins AFTER INSERT ON address_bans BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER address_bans_upd AFTER UPDATE ON address_bans BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER address_bans_del AFTER DELETE ON address_bans BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER enum_entries_ins AFTER INSERT ON enum_entries BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER enum_entries_upd AFTER UPDATE ON enum_entries BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER enum_entries_del AFTER DELETE ON enum_entries BEGIN UPDATE registry_version SET version = version + 1 WHERE id = 1; END;
-- @end
