//! All SQL text, per dialect, in one place. Code that runs it is written once
//! (see `store::dispatch!`); only these strings differ between databases.
//!
//! Encodings follow the kavachOS contract for `kavach_users`: SQLite keeps
//! timestamps as Unix seconds and booleans as 0/1; Postgres uses TIMESTAMPTZ and
//! BOOLEAN; MySQL uses DATETIME(3) in UTC (sessions run with time_zone '+00:00')
//! and TINYINT(1). Queries exchange timestamps with Rust as Unix seconds and
//! convert in SQL. The package's own tables keep Stripe's timestamps as BIGINT
//! Unix seconds, as Stripe sends them.

#[derive(Debug)]
pub struct Dialect {
    pub name: &'static str,
    /// Column names of `kavach_users`, one per row.
    pub users_columns: &'static str,
    pub create_users_table: &'static str,
    /// `ALTER TABLE` statements adding one Stripe column each, in
    /// `USERS_STRIPE_COLUMNS` order; a column may need a second statement
    /// (SQLite cannot add a UNIQUE column, so it adds a unique index after).
    pub add_users_column: [&'static [&'static str]; 6],
    pub create_schema_table: &'static str,
    pub schema_version: &'static str,
    pub record_schema_version: &'static str,
    /// Schema version 1: the package's own tables.
    pub migration_v1: &'static [&'static str],
    /// Schema version 2: what the batch writer needs on the server (the
    /// Postgres batch function; nothing on MySQL and SQLite).
    pub migration_v2: &'static [&'static str],
    /// Schema version 3: Stripe and event ids compare exactly (MySQL's
    /// default collation is case-insensitive; nothing on the others).
    pub migration_v3: &'static [&'static str],
    /// Column names of `kavach_stripe_subscriptions`, one per row.
    pub subscription_columns: &'static str,
    /// Schema version 4, first part: one `ALTER TABLE` per column of
    /// `SUBSCRIPTION_V4_COLUMNS`, run only where the column is missing (MySQL
    /// has no `ADD COLUMN IF NOT EXISTS`, and its DDL does not roll back).
    pub add_subscription_column: [&'static str; 4],
    /// Schema version 4: the trial grants (and, on Postgres, the batch
    /// function writing the new columns).
    pub migration_v4: &'static [&'static str],
    /// Schema version 5: the invoices dunning needs.
    pub migration_v5: &'static [&'static str],
    /// Schema version 6: `onEvent` deliveries, tracked apart from the ledger.
    pub migration_v6: &'static [&'static str],
    /// Index names of `kavach_stripe_events`, one per row, and the index
    /// schema version 4 adds (created only where missing: MySQL has no
    /// `CREATE INDEX IF NOT EXISTS`).
    pub event_indexes: &'static str,
    pub create_notify_index: &'static str,
    /// Schema version 4 fills product and quantity of rows written before it
    /// from their stored items: rows to fill, then one row's update.
    pub backfill_select: &'static str,
    pub backfill_update: &'static str,

    pub select_user: &'static str,
    pub link_customer: &'static str,
    pub upsert_user: &'static str,
    pub insert_checkout_session: &'static str,

    // The event ledger.
    pub claim_event: &'static str,
    pub read_event: &'static str,
    pub take_over_event: &'static str,
    pub finish_event: &'static str,
    pub release_event: &'static str,
    pub release_notification: &'static str,
    pub mark_notified: &'static str,
    pub prune_events: &'static str,
    /// One ledger row still owing user ?'s notification (its lease expired).
    pub owed_notification: &'static str,
    /// Every ledger row owing user ? a notification.
    pub owed_notification_ids: &'static str,

    // Subscriptions and the projection.
    pub checkout_session_user: &'static str,
    pub user_by_customer: &'static str,
    pub unlink_customer: &'static str,
    pub lock_user: &'static str,
    pub select_subscription: &'static str,
    pub lock_subscription: &'static str,
    pub upsert_subscription: &'static str,
    pub set_subscription_status: &'static str,
    pub user_subscriptions: &'static str,
    pub write_projection: &'static str,

    // Billing status: one stored subscription, whole.
    pub select_subscription_record: &'static str,

    // Invoices: ordered per invoice, and the payment issue of a subscription.
    pub lock_invoice: &'static str,
    pub upsert_invoice: &'static str,
    pub merge_invoice_action: &'static str,
    pub payment_issue: &'static str,
    /// Records, with the invoice write, that the owner is owed a notification
    /// for this event's payment issue: id, created, user, lease, now.
    pub record_issue_notification: &'static str,

    // `onEvent` deliveries: claimed under a lease, done once the callback succeeded.
    pub claim_event_delivery: &'static str,
    pub read_event_delivery: &'static str,
    pub take_over_event_delivery: &'static str,
    pub finish_event_delivery: &'static str,
    pub release_event_delivery: &'static str,
    pub prune_event_deliveries: &'static str,

    // One trial per user: a stored subscription with a trial, or a grant row.
    pub user_had_trial: &'static str,
    pub claim_trial: &'static str,
    pub read_trial_grant: &'static str,
    pub bind_trial_grant: &'static str,
    pub release_trial_claim: &'static str,
    pub retake_trial_grant: &'static str,

    // The guard that makes concurrent customer creation create one customer.
    pub claim_customer: &'static str,
    pub take_over_customer_claim: &'static str,
    pub release_customer_claim: &'static str,
}

/// The columns schema version 4 adds to `kavach_stripe_subscriptions`, in
/// `Dialect::add_subscription_column` order.
pub const SUBSCRIPTION_V4_COLUMNS: [&str; 4] =
    ["product_id", "quantity", "trial_start", "ended_at"];

/// The six Stripe columns of `kavach_users`.
pub const USERS_STRIPE_COLUMNS: [&str; 6] = [
    "stripe_customer_id",
    "stripe_subscription_id",
    "stripe_subscription_status",
    "stripe_price_id",
    "stripe_current_period_end",
    "stripe_cancel_at_period_end",
];

pub static POSTGRES: Dialect = Dialect {
    name: "postgres",
    users_columns: "SELECT column_name::text FROM information_schema.columns \
        WHERE table_schema = current_schema() AND table_name = 'kavach_users'",
    create_users_table: "CREATE TABLE IF NOT EXISTS kavach_users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        stripe_customer_id TEXT UNIQUE,
        stripe_subscription_id TEXT,
        stripe_subscription_status TEXT,
        stripe_price_id TEXT,
        stripe_current_period_end TIMESTAMPTZ,
        stripe_cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE
    )",
    add_users_column: [
        &["ALTER TABLE kavach_users ADD COLUMN stripe_customer_id TEXT UNIQUE"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_status TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_price_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_current_period_end TIMESTAMPTZ"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE"],
    ],
    create_schema_table: "CREATE TABLE IF NOT EXISTS kavach_stripe_schema (
        version INTEGER PRIMARY KEY,
        applied_at BIGINT NOT NULL
    )",
    schema_version: "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM kavach_stripe_schema",
    record_schema_version: "INSERT INTO kavach_stripe_schema (version, applied_at) \
        VALUES ($1, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT))",
    migration_v1: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_subscriptions (
            id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            user_id TEXT,
            status TEXT NOT NULL,
            items TEXT NOT NULL,
            price_id TEXT,
            current_period_end BIGINT,
            cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
            cancel_at BIGINT,
            trial_end BIGINT,
            created BIGINT NOT NULL,
            last_event_created BIGINT,
            updated_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_subscriptions_user ON kavach_stripe_subscriptions (user_id)",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_subscriptions_customer ON kavach_stripe_subscriptions (customer_id)",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            created BIGINT NOT NULL,
            state TEXT NOT NULL,
            detail TEXT,
            notify_user_id TEXT,
            lease_until BIGINT NOT NULL,
            received_at BIGINT NOT NULL,
            handled_at BIGINT
        )",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_checkout_sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_customer_claims (
            user_id TEXT PRIMARY KEY,
            claimed_at BIGINT NOT NULL
        )",
    ],
    migration_v2: &[POSTGRES_APPLY_EVENTS_FUNCTION],
    migration_v3: &[],
    subscription_columns: "SELECT column_name::text FROM information_schema.columns \
        WHERE table_schema = current_schema() AND table_name = 'kavach_stripe_subscriptions'",
    add_subscription_column: [
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN IF NOT EXISTS product_id TEXT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN IF NOT EXISTS quantity BIGINT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN IF NOT EXISTS trial_start BIGINT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN IF NOT EXISTS ended_at BIGINT",
    ],
    migration_v4: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_trial_grants (
            user_id TEXT PRIMARY KEY,
            checkout_session_id TEXT,
            granted_at BIGINT NOT NULL,
            session_expires_at BIGINT
        )",
        POSTGRES_APPLY_EVENTS_FUNCTION,
    ],
    migration_v5: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_invoices (
            id TEXT PRIMARY KEY,
            subscription_id TEXT,
            customer_id TEXT,
            status TEXT NOT NULL,
            billing_reason TEXT,
            amount_due BIGINT,
            amount_paid BIGINT,
            amount_remaining BIGINT,
            currency TEXT,
            attempt_count BIGINT NOT NULL DEFAULT 0,
            next_payment_attempt BIGINT,
            hosted_invoice_url TEXT,
            invoice_pdf TEXT,
            created BIGINT NOT NULL,
            action_required BOOLEAN NOT NULL DEFAULT FALSE,
            last_event_created BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_invoices_subscription ON kavach_stripe_invoices (subscription_id)",
    ],
    migration_v6: &["CREATE TABLE IF NOT EXISTS kavach_stripe_event_deliveries (
            event_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            lease_until BIGINT NOT NULL,
            delivered_at BIGINT
        )"],
    event_indexes: "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'kavach_stripe_events'",
    create_notify_index: "CREATE INDEX IF NOT EXISTS kavach_stripe_events_notify ON kavach_stripe_events (notify_user_id)",
    backfill_select: "SELECT id, items FROM kavach_stripe_subscriptions WHERE product_id IS NULL AND quantity IS NULL",
    backfill_update: "UPDATE kavach_stripe_subscriptions SET product_id = $1, quantity = $2 WHERE id = $3",
    select_user: "SELECT id, email, name, stripe_customer_id, stripe_subscription_id, \
        stripe_subscription_status, stripe_price_id, \
        CAST(EXTRACT(EPOCH FROM stripe_current_period_end) AS BIGINT), \
        stripe_cancel_at_period_end \
        FROM kavach_users WHERE id = $1",
    link_customer: "UPDATE kavach_users SET stripe_customer_id = $1, updated_at = now() \
        WHERE id = $2 AND (stripe_customer_id IS NULL OR stripe_customer_id = $3)",
    upsert_user: "INSERT INTO kavach_users (id, email, name, created_at, updated_at) \
        VALUES ($1, $2, $3, now(), now()) \
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()",
    insert_checkout_session: "INSERT INTO kavach_stripe_checkout_sessions (id, user_id, created_at) \
        VALUES ($1, $2, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)) ON CONFLICT (id) DO NOTHING",
    claim_event: "INSERT INTO kavach_stripe_events (id, type, created, state, lease_until, received_at) VALUES ($1, $2, $3, 'processing', $4, $5) ON CONFLICT (id) DO NOTHING",
    read_event: "SELECT state, lease_until, notify_user_id FROM kavach_stripe_events WHERE id = $1",
    take_over_event: "UPDATE kavach_stripe_events SET lease_until = $1 WHERE id = $2 AND state = $3 AND lease_until < $4",
    finish_event: "UPDATE kavach_stripe_events SET state = $1, detail = $2, notify_user_id = $3, handled_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) WHERE id = $4",
    release_event: "DELETE FROM kavach_stripe_events WHERE id = $1 AND state = 'processing'",
    mark_notified: "UPDATE kavach_stripe_events SET state = 'done', notify_user_id = NULL WHERE id = $1 AND state = 'notify'",
    checkout_session_user: "SELECT user_id FROM kavach_stripe_checkout_sessions WHERE id = $1",
    user_by_customer: "SELECT id, stripe_customer_id FROM kavach_users WHERE stripe_customer_id = $1",
    unlink_customer: "UPDATE kavach_users SET stripe_customer_id = NULL, updated_at = now() WHERE id = $1 AND stripe_customer_id = $2",
    lock_user: "SELECT id FROM kavach_users WHERE id = $1 FOR UPDATE",
    select_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = $1",
    lock_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = $1 FOR UPDATE",
    upsert_subscription: "INSERT INTO kavach_stripe_subscriptions (id, customer_id, user_id, status, items, price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end, created, last_event_created, product_id, quantity, trial_start, ended_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)) ON CONFLICT (id) DO UPDATE SET user_id = COALESCE(EXCLUDED.user_id, kavach_stripe_subscriptions.user_id), customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, items = EXCLUDED.items, price_id = EXCLUDED.price_id, current_period_end = EXCLUDED.current_period_end, cancel_at_period_end = EXCLUDED.cancel_at_period_end, cancel_at = EXCLUDED.cancel_at, trial_end = EXCLUDED.trial_end, created = EXCLUDED.created, last_event_created = EXCLUDED.last_event_created, product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity, trial_start = EXCLUDED.trial_start, ended_at = EXCLUDED.ended_at, updated_at = EXCLUDED.updated_at",
    set_subscription_status: "UPDATE kavach_stripe_subscriptions SET status = $1, last_event_created = $2, updated_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) WHERE id = $3",
    user_subscriptions: "SELECT id, status, created, price_id, current_period_end, cancel_at_period_end, cancel_at FROM kavach_stripe_subscriptions WHERE user_id = $1",
    write_projection: "UPDATE kavach_users SET stripe_subscription_id = $1, stripe_subscription_status = $2, stripe_price_id = $3, stripe_current_period_end = to_timestamp(CAST($4 AS DOUBLE PRECISION)), stripe_cancel_at_period_end = $5, updated_at = now() WHERE id = $6",
    select_subscription_record: SUBSCRIPTION_RECORD_PG,
    claim_event_delivery: "INSERT INTO kavach_stripe_event_deliveries (event_id, state, lease_until) VALUES ($1, 'processing', $2) ON CONFLICT (event_id) DO NOTHING",
    read_event_delivery: "SELECT state, lease_until FROM kavach_stripe_event_deliveries WHERE event_id = $1",
    take_over_event_delivery: "UPDATE kavach_stripe_event_deliveries SET lease_until = $1 WHERE event_id = $2 AND state = 'processing' AND lease_until < $3",
    finish_event_delivery: "UPDATE kavach_stripe_event_deliveries SET state = 'done', delivered_at = $1 WHERE event_id = $2",
    release_event_delivery: "DELETE FROM kavach_stripe_event_deliveries WHERE event_id = $1 AND state = 'processing'",
    prune_event_deliveries: "DELETE FROM kavach_stripe_event_deliveries WHERE state = 'done' AND delivered_at < $1",
    lock_invoice: "SELECT status, attempt_count, last_event_created, action_required FROM kavach_stripe_invoices WHERE id = $1 FOR UPDATE",
    upsert_invoice: "INSERT INTO kavach_stripe_invoices (id, subscription_id, customer_id, status, billing_reason, amount_due, amount_paid, amount_remaining, currency, attempt_count, next_payment_attempt, hosted_invoice_url, invoice_pdf, created, action_required, last_event_created, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)) ON CONFLICT (id) DO UPDATE SET subscription_id = COALESCE(EXCLUDED.subscription_id, kavach_stripe_invoices.subscription_id), customer_id = COALESCE(EXCLUDED.customer_id, kavach_stripe_invoices.customer_id), status = EXCLUDED.status, billing_reason = EXCLUDED.billing_reason, amount_due = EXCLUDED.amount_due, amount_paid = EXCLUDED.amount_paid, amount_remaining = EXCLUDED.amount_remaining, currency = EXCLUDED.currency, attempt_count = EXCLUDED.attempt_count, next_payment_attempt = EXCLUDED.next_payment_attempt, hosted_invoice_url = EXCLUDED.hosted_invoice_url, invoice_pdf = EXCLUDED.invoice_pdf, created = EXCLUDED.created, action_required = EXCLUDED.action_required, last_event_created = EXCLUDED.last_event_created, updated_at = EXCLUDED.updated_at",
    merge_invoice_action: "UPDATE kavach_stripe_invoices SET action_required = TRUE, updated_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) WHERE id = $1",
    record_issue_notification: "INSERT INTO kavach_stripe_events (id, type, created, state, notify_user_id, lease_until, received_at) VALUES ($1, 'kavach.payment_issue', $2, 'notify', $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    payment_issue: "SELECT id, status, amount_due, currency, attempt_count, next_payment_attempt, hosted_invoice_url, action_required FROM kavach_stripe_invoices WHERE subscription_id = $1 AND status = 'open' AND (attempt_count > 0 OR action_required) ORDER BY created DESC, id COLLATE \"C\" DESC LIMIT 1",
    user_had_trial: "SELECT 1 FROM kavach_stripe_subscriptions WHERE user_id = $1 AND (trial_end IS NOT NULL OR trial_start IS NOT NULL) LIMIT 1",
    claim_trial: "INSERT INTO kavach_stripe_trial_grants (user_id, granted_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
    read_trial_grant: "SELECT checkout_session_id, session_expires_at FROM kavach_stripe_trial_grants WHERE user_id = $1",
    bind_trial_grant: "UPDATE kavach_stripe_trial_grants SET checkout_session_id = $1, session_expires_at = $2 WHERE user_id = $3 AND checkout_session_id IS NULL",
    release_trial_claim: "DELETE FROM kavach_stripe_trial_grants WHERE user_id = $1 AND checkout_session_id IS NULL",
    retake_trial_grant: "UPDATE kavach_stripe_trial_grants SET checkout_session_id = NULL, session_expires_at = NULL, granted_at = $1 WHERE user_id = $2 AND checkout_session_id = $3",
    claim_customer: "INSERT INTO kavach_stripe_customer_claims (user_id, claimed_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
    take_over_customer_claim: "UPDATE kavach_stripe_customer_claims SET claimed_at = $1 WHERE user_id = $2 AND claimed_at < $3",
    release_customer_claim: "DELETE FROM kavach_stripe_customer_claims WHERE user_id = $1",
    release_notification: "UPDATE kavach_stripe_events SET lease_until = 0 WHERE id = $1 AND state = 'notify'",
    prune_events: "DELETE FROM kavach_stripe_events WHERE received_at < $1 AND state IN ('done', 'ignored')",
    owed_notification: "SELECT id FROM kavach_stripe_events WHERE notify_user_id = $1 AND state = 'notify' AND lease_until < $2 LIMIT 1",
    owed_notification_ids: "SELECT id FROM kavach_stripe_events WHERE notify_user_id = $1 AND state = 'notify'",
};

pub static MYSQL: Dialect = Dialect {
    name: "mysql",
    users_columns: "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
        WHERE table_schema = DATABASE() AND table_name = 'kavach_users'",
    // MySQL rejects TEXT in a key or unique index: keys are VARCHAR(255).
    create_users_table: "CREATE TABLE IF NOT EXISTS kavach_users (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        email VARCHAR(255) NOT NULL UNIQUE,
        name TEXT,
        created_at DATETIME(3) NOT NULL,
        updated_at DATETIME(3) NOT NULL,
        stripe_customer_id VARCHAR(255) UNIQUE,
        stripe_subscription_id TEXT,
        stripe_subscription_status TEXT,
        stripe_price_id TEXT,
        stripe_current_period_end DATETIME(3),
        stripe_cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0
    ) DEFAULT CHARSET = utf8mb4",
    add_users_column: [
        &["ALTER TABLE kavach_users ADD COLUMN stripe_customer_id VARCHAR(255) UNIQUE"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_status TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_price_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_current_period_end DATETIME(3)"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0"],
    ],
    create_schema_table: "CREATE TABLE IF NOT EXISTS kavach_stripe_schema (
        version INTEGER NOT NULL PRIMARY KEY,
        applied_at BIGINT NOT NULL
    )",
    schema_version: "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM kavach_stripe_schema",
    record_schema_version: "INSERT INTO kavach_stripe_schema (version, applied_at) \
        VALUES (?, UNIX_TIMESTAMP())",
    // MySQL has no CREATE INDEX IF NOT EXISTS: indexes live inside CREATE TABLE.
    migration_v1: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_subscriptions (
            id VARCHAR(255) NOT NULL PRIMARY KEY,
            customer_id VARCHAR(255) NOT NULL,
            user_id VARCHAR(255),
            status VARCHAR(32) NOT NULL,
            items TEXT NOT NULL,
            price_id VARCHAR(255),
            current_period_end BIGINT,
            cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0,
            cancel_at BIGINT,
            trial_end BIGINT,
            created BIGINT NOT NULL,
            last_event_created BIGINT,
            updated_at BIGINT NOT NULL,
            INDEX kavach_stripe_subscriptions_user (user_id),
            INDEX kavach_stripe_subscriptions_customer (customer_id)
        ) DEFAULT CHARSET = utf8mb4",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_events (
            id VARCHAR(255) NOT NULL PRIMARY KEY,
            type VARCHAR(255) NOT NULL,
            created BIGINT NOT NULL,
            state VARCHAR(16) NOT NULL,
            detail TEXT,
            notify_user_id VARCHAR(255),
            lease_until BIGINT NOT NULL,
            received_at BIGINT NOT NULL,
            handled_at BIGINT
        ) DEFAULT CHARSET = utf8mb4",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_checkout_sessions (
            id VARCHAR(255) NOT NULL PRIMARY KEY,
            user_id VARCHAR(255) NOT NULL,
            created_at BIGINT NOT NULL
        ) DEFAULT CHARSET = utf8mb4",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_customer_claims (
            user_id VARCHAR(255) NOT NULL PRIMARY KEY,
            claimed_at BIGINT NOT NULL
        ) DEFAULT CHARSET = utf8mb4",
    ],
    migration_v2: &[],
    // Each ALTER copies its table once. Idempotent: MODIFY to the same
    // definition changes nothing.
    migration_v3: &[
        "ALTER TABLE kavach_stripe_subscriptions \
            MODIFY id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
            MODIFY customer_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
            MODIFY price_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "ALTER TABLE kavach_stripe_events \
            MODIFY id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
        "ALTER TABLE kavach_stripe_checkout_sessions \
            MODIFY id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
    ],
    subscription_columns: "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
        WHERE table_schema = DATABASE() AND table_name = 'kavach_stripe_subscriptions'",
    add_subscription_column: [
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN product_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN quantity BIGINT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN trial_start BIGINT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN ended_at BIGINT",
    ],
    migration_v4: &["CREATE TABLE IF NOT EXISTS kavach_stripe_trial_grants (
            user_id VARCHAR(255) NOT NULL PRIMARY KEY,
            checkout_session_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
            granted_at BIGINT NOT NULL,
            session_expires_at BIGINT
        ) DEFAULT CHARSET = utf8mb4"],
    migration_v5: &["CREATE TABLE IF NOT EXISTS kavach_stripe_invoices (
            id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
            subscription_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
            customer_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
            status VARCHAR(32) NOT NULL,
            billing_reason VARCHAR(64),
            amount_due BIGINT,
            amount_paid BIGINT,
            amount_remaining BIGINT,
            currency VARCHAR(16),
            attempt_count BIGINT NOT NULL DEFAULT 0,
            next_payment_attempt BIGINT,
            hosted_invoice_url TEXT,
            invoice_pdf TEXT,
            created BIGINT NOT NULL,
            action_required TINYINT(1) NOT NULL DEFAULT 0,
            last_event_created BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            INDEX kavach_stripe_invoices_subscription (subscription_id)
        ) DEFAULT CHARSET = utf8mb4"],
    migration_v6: &["CREATE TABLE IF NOT EXISTS kavach_stripe_event_deliveries (
            event_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
            state VARCHAR(16) NOT NULL,
            lease_until BIGINT NOT NULL,
            delivered_at BIGINT
        ) DEFAULT CHARSET = utf8mb4"],
    event_indexes: "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
        WHERE table_schema = DATABASE() AND table_name = 'kavach_stripe_events'",
    create_notify_index: "CREATE INDEX kavach_stripe_events_notify ON kavach_stripe_events (notify_user_id)",
    backfill_select: "SELECT id, items FROM kavach_stripe_subscriptions WHERE product_id IS NULL AND quantity IS NULL",
    backfill_update: "UPDATE kavach_stripe_subscriptions SET product_id = ?, quantity = ? WHERE id = ?",
    select_user: "SELECT id, email, name, stripe_customer_id, stripe_subscription_id, \
        stripe_subscription_status, stripe_price_id, \
        CAST(UNIX_TIMESTAMP(stripe_current_period_end) AS SIGNED), \
        stripe_cancel_at_period_end \
        FROM kavach_users WHERE id = ?",
    link_customer: "UPDATE kavach_users SET stripe_customer_id = ?, updated_at = UTC_TIMESTAMP(3) \
        WHERE id = ? AND (stripe_customer_id IS NULL OR BINARY stripe_customer_id = ?)",
    upsert_user: "INSERT INTO kavach_users (id, email, name, created_at, updated_at) \
        VALUES (?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)) \
        ON DUPLICATE KEY UPDATE email = VALUES(email), name = VALUES(name), updated_at = UTC_TIMESTAMP(3)",
    insert_checkout_session: "INSERT INTO kavach_stripe_checkout_sessions (id, user_id, created_at) \
        VALUES (?, ?, UNIX_TIMESTAMP()) ON DUPLICATE KEY UPDATE id = id",
    // sqlx connects with CLIENT_FOUND_ROWS, under which ON DUPLICATE KEY UPDATE
    // reports an untouched duplicate as affected; IGNORE reports it as 0.
    claim_event: "INSERT IGNORE INTO kavach_stripe_events (id, type, created, state, lease_until, received_at) VALUES (?, ?, ?, 'processing', ?, ?)",
    read_event: "SELECT state, lease_until, notify_user_id FROM kavach_stripe_events WHERE id = ?",
    take_over_event: "UPDATE kavach_stripe_events SET lease_until = ? WHERE id = ? AND state = ? AND lease_until < ?",
    finish_event: "UPDATE kavach_stripe_events SET state = ?, detail = ?, notify_user_id = ?, handled_at = UNIX_TIMESTAMP() WHERE id = ?",
    release_event: "DELETE FROM kavach_stripe_events WHERE id = ? AND state = 'processing'",
    mark_notified: "UPDATE kavach_stripe_events SET state = 'done', notify_user_id = NULL WHERE id = ? AND state = 'notify'",
    checkout_session_user: "SELECT user_id FROM kavach_stripe_checkout_sessions WHERE id = ?",
    user_by_customer: "SELECT id, stripe_customer_id FROM kavach_users WHERE stripe_customer_id = ?",
    // The host's column may compare case-insensitively; Stripe ids do not.
    unlink_customer: "UPDATE kavach_users SET stripe_customer_id = NULL, updated_at = UTC_TIMESTAMP(3) WHERE id = ? AND BINARY stripe_customer_id = ?",
    lock_user: "SELECT id FROM kavach_users WHERE id = ? FOR UPDATE",
    select_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = ?",
    lock_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = ? FOR UPDATE",
    upsert_subscription: "INSERT INTO kavach_stripe_subscriptions (id, customer_id, user_id, status, items, price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end, created, last_event_created, product_id, quantity, trial_start, ended_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UNIX_TIMESTAMP()) ON DUPLICATE KEY UPDATE user_id = COALESCE(VALUES(user_id), user_id), customer_id = VALUES(customer_id), status = VALUES(status), items = VALUES(items), price_id = VALUES(price_id), current_period_end = VALUES(current_period_end), cancel_at_period_end = VALUES(cancel_at_period_end), cancel_at = VALUES(cancel_at), trial_end = VALUES(trial_end), created = VALUES(created), last_event_created = VALUES(last_event_created), product_id = VALUES(product_id), quantity = VALUES(quantity), trial_start = VALUES(trial_start), ended_at = VALUES(ended_at), updated_at = VALUES(updated_at)",
    set_subscription_status: "UPDATE kavach_stripe_subscriptions SET status = ?, last_event_created = ?, updated_at = UNIX_TIMESTAMP() WHERE id = ?",
    user_subscriptions: "SELECT id, status, created, price_id, current_period_end, cancel_at_period_end, cancel_at FROM kavach_stripe_subscriptions WHERE user_id = ?",
    write_projection: "UPDATE kavach_users SET stripe_subscription_id = ?, stripe_subscription_status = ?, stripe_price_id = ?, stripe_current_period_end = FROM_UNIXTIME(?), stripe_cancel_at_period_end = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
    select_subscription_record: SUBSCRIPTION_RECORD,
    claim_event_delivery: "INSERT IGNORE INTO kavach_stripe_event_deliveries (event_id, state, lease_until) VALUES (?, 'processing', ?)",
    read_event_delivery: READ_EVENT_DELIVERY,
    take_over_event_delivery: TAKE_OVER_EVENT_DELIVERY,
    finish_event_delivery: FINISH_EVENT_DELIVERY,
    release_event_delivery: RELEASE_EVENT_DELIVERY,
    prune_event_deliveries: PRUNE_EVENT_DELIVERIES,
    lock_invoice: "SELECT status, attempt_count, last_event_created, action_required FROM kavach_stripe_invoices WHERE id = ? FOR UPDATE",
    upsert_invoice: "INSERT INTO kavach_stripe_invoices (id, subscription_id, customer_id, status, billing_reason, amount_due, amount_paid, amount_remaining, currency, attempt_count, next_payment_attempt, hosted_invoice_url, invoice_pdf, created, action_required, last_event_created, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UNIX_TIMESTAMP()) ON DUPLICATE KEY UPDATE subscription_id = COALESCE(VALUES(subscription_id), subscription_id), customer_id = COALESCE(VALUES(customer_id), customer_id), status = VALUES(status), billing_reason = VALUES(billing_reason), amount_due = VALUES(amount_due), amount_paid = VALUES(amount_paid), amount_remaining = VALUES(amount_remaining), currency = VALUES(currency), attempt_count = VALUES(attempt_count), next_payment_attempt = VALUES(next_payment_attempt), hosted_invoice_url = VALUES(hosted_invoice_url), invoice_pdf = VALUES(invoice_pdf), created = VALUES(created), action_required = VALUES(action_required), last_event_created = VALUES(last_event_created), updated_at = VALUES(updated_at)",
    merge_invoice_action: "UPDATE kavach_stripe_invoices SET action_required = 1, updated_at = UNIX_TIMESTAMP() WHERE id = ?",
    record_issue_notification: "INSERT IGNORE INTO kavach_stripe_events (id, type, created, state, notify_user_id, lease_until, received_at) VALUES (?, 'kavach.payment_issue', ?, 'notify', ?, ?, ?)",
    payment_issue: PAYMENT_ISSUE,
    user_had_trial: USER_HAD_TRIAL,
    claim_trial: "INSERT IGNORE INTO kavach_stripe_trial_grants (user_id, granted_at) VALUES (?, ?)",
    read_trial_grant: READ_TRIAL_GRANT,
    bind_trial_grant: BIND_TRIAL_GRANT,
    release_trial_claim: RELEASE_TRIAL_CLAIM,
    retake_trial_grant: RETAKE_TRIAL_GRANT,
    claim_customer: "INSERT IGNORE INTO kavach_stripe_customer_claims (user_id, claimed_at) VALUES (?, ?)",
    take_over_customer_claim: "UPDATE kavach_stripe_customer_claims SET claimed_at = ? WHERE user_id = ? AND claimed_at < ?",
    release_customer_claim: "DELETE FROM kavach_stripe_customer_claims WHERE user_id = ?",
    release_notification: "UPDATE kavach_stripe_events SET lease_until = 0 WHERE id = ? AND state = 'notify'",
    prune_events: "DELETE FROM kavach_stripe_events WHERE received_at < ? AND state IN ('done', 'ignored')",
    owed_notification: OWED_NOTIFICATION,
    owed_notification_ids: OWED_NOTIFICATION_IDS,
};

pub static SQLITE: Dialect = Dialect {
    name: "sqlite",
    users_columns: "SELECT name FROM pragma_table_info('kavach_users')",
    create_users_table: "CREATE TABLE IF NOT EXISTS kavach_users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        stripe_customer_id TEXT UNIQUE,
        stripe_subscription_id TEXT,
        stripe_subscription_status TEXT,
        stripe_price_id TEXT,
        stripe_current_period_end INTEGER,
        stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0
    )",
    // ADD COLUMN cannot carry UNIQUE in SQLite: add the column, then the index.
    add_users_column: [
        &[
            "ALTER TABLE kavach_users ADD COLUMN stripe_customer_id TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS kavach_users_stripe_customer_id_unique ON kavach_users (stripe_customer_id)",
        ],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_subscription_status TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_price_id TEXT"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_current_period_end INTEGER"],
        &["ALTER TABLE kavach_users ADD COLUMN stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0"],
    ],
    create_schema_table: "CREATE TABLE IF NOT EXISTS kavach_stripe_schema (
        version INTEGER PRIMARY KEY,
        applied_at INTEGER NOT NULL
    )",
    schema_version: "SELECT COALESCE(MAX(version), 0) FROM kavach_stripe_schema",
    record_schema_version: "INSERT INTO kavach_stripe_schema (version, applied_at) VALUES (?, unixepoch())",
    migration_v1: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_subscriptions (
            id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            user_id TEXT,
            status TEXT NOT NULL,
            items TEXT NOT NULL,
            price_id TEXT,
            current_period_end INTEGER,
            cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
            cancel_at INTEGER,
            trial_end INTEGER,
            created INTEGER NOT NULL,
            last_event_created INTEGER,
            updated_at INTEGER NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_subscriptions_user ON kavach_stripe_subscriptions (user_id)",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_subscriptions_customer ON kavach_stripe_subscriptions (customer_id)",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            created INTEGER NOT NULL,
            state TEXT NOT NULL,
            detail TEXT,
            notify_user_id TEXT,
            lease_until INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            handled_at INTEGER
        )",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_checkout_sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS kavach_stripe_customer_claims (
            user_id TEXT PRIMARY KEY,
            claimed_at INTEGER NOT NULL
        )",
    ],
    migration_v2: &[],
    migration_v3: &[],
    subscription_columns: "SELECT name FROM pragma_table_info('kavach_stripe_subscriptions')",
    add_subscription_column: [
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN product_id TEXT",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN quantity INTEGER",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN trial_start INTEGER",
        "ALTER TABLE kavach_stripe_subscriptions ADD COLUMN ended_at INTEGER",
    ],
    migration_v4: &["CREATE TABLE IF NOT EXISTS kavach_stripe_trial_grants (
            user_id TEXT PRIMARY KEY,
            checkout_session_id TEXT,
            granted_at INTEGER NOT NULL,
            session_expires_at INTEGER
        )"],
    migration_v5: &[
        "CREATE TABLE IF NOT EXISTS kavach_stripe_invoices (
            id TEXT PRIMARY KEY,
            subscription_id TEXT,
            customer_id TEXT,
            status TEXT NOT NULL,
            billing_reason TEXT,
            amount_due INTEGER,
            amount_paid INTEGER,
            amount_remaining INTEGER,
            currency TEXT,
            attempt_count INTEGER NOT NULL DEFAULT 0,
            next_payment_attempt INTEGER,
            hosted_invoice_url TEXT,
            invoice_pdf TEXT,
            created INTEGER NOT NULL,
            action_required INTEGER NOT NULL DEFAULT 0,
            last_event_created INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS kavach_stripe_invoices_subscription ON kavach_stripe_invoices (subscription_id)",
    ],
    migration_v6: &["CREATE TABLE IF NOT EXISTS kavach_stripe_event_deliveries (
            event_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            lease_until INTEGER NOT NULL,
            delivered_at INTEGER
        )"],
    event_indexes: "SELECT name FROM pragma_index_list('kavach_stripe_events')",
    create_notify_index: "CREATE INDEX IF NOT EXISTS kavach_stripe_events_notify ON kavach_stripe_events (notify_user_id)",
    backfill_select: "SELECT id, items FROM kavach_stripe_subscriptions WHERE product_id IS NULL AND quantity IS NULL",
    backfill_update: "UPDATE kavach_stripe_subscriptions SET product_id = ?, quantity = ? WHERE id = ?",
    select_user: "SELECT id, email, name, stripe_customer_id, stripe_subscription_id, \
        stripe_subscription_status, stripe_price_id, stripe_current_period_end, \
        stripe_cancel_at_period_end \
        FROM kavach_users WHERE id = ?",
    link_customer: "UPDATE kavach_users SET stripe_customer_id = ?, updated_at = unixepoch() \
        WHERE id = ? AND (stripe_customer_id IS NULL OR stripe_customer_id = ?)",
    upsert_user: "INSERT INTO kavach_users (id, email, name, created_at, updated_at) \
        VALUES (?, ?, ?, unixepoch(), unixepoch()) \
        ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, updated_at = unixepoch()",
    insert_checkout_session: "INSERT INTO kavach_stripe_checkout_sessions (id, user_id, created_at) \
        VALUES (?, ?, unixepoch()) ON CONFLICT (id) DO NOTHING",
    claim_event: "INSERT INTO kavach_stripe_events (id, type, created, state, lease_until, received_at) VALUES (?, ?, ?, 'processing', ?, ?) ON CONFLICT (id) DO NOTHING",
    read_event: "SELECT state, lease_until, notify_user_id FROM kavach_stripe_events WHERE id = ?",
    take_over_event: "UPDATE kavach_stripe_events SET lease_until = ? WHERE id = ? AND state = ? AND lease_until < ?",
    finish_event: "UPDATE kavach_stripe_events SET state = ?, detail = ?, notify_user_id = ?, handled_at = unixepoch() WHERE id = ?",
    release_event: "DELETE FROM kavach_stripe_events WHERE id = ? AND state = 'processing'",
    mark_notified: "UPDATE kavach_stripe_events SET state = 'done', notify_user_id = NULL WHERE id = ? AND state = 'notify'",
    checkout_session_user: "SELECT user_id FROM kavach_stripe_checkout_sessions WHERE id = ?",
    user_by_customer: "SELECT id, stripe_customer_id FROM kavach_users WHERE stripe_customer_id = ?",
    unlink_customer: "UPDATE kavach_users SET stripe_customer_id = NULL, updated_at = unixepoch() WHERE id = ? AND stripe_customer_id = ?",
    lock_user: "SELECT id FROM kavach_users WHERE id = ?",
    select_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = ?",
    lock_subscription: "SELECT user_id, status, last_event_created FROM kavach_stripe_subscriptions WHERE id = ?",
    upsert_subscription: SQLITE_UPSERT_SUBSCRIPTION,
    set_subscription_status: "UPDATE kavach_stripe_subscriptions SET status = ?, last_event_created = ?, updated_at = unixepoch() WHERE id = ?",
    user_subscriptions: "SELECT id, status, created, price_id, current_period_end, cancel_at_period_end, cancel_at FROM kavach_stripe_subscriptions WHERE user_id = ?",
    write_projection: "UPDATE kavach_users SET stripe_subscription_id = ?, stripe_subscription_status = ?, stripe_price_id = ?, stripe_current_period_end = ?, stripe_cancel_at_period_end = ?, updated_at = unixepoch() WHERE id = ?",
    select_subscription_record: SUBSCRIPTION_RECORD,
    claim_event_delivery: "INSERT INTO kavach_stripe_event_deliveries (event_id, state, lease_until) VALUES (?, 'processing', ?) ON CONFLICT (event_id) DO NOTHING",
    read_event_delivery: READ_EVENT_DELIVERY,
    take_over_event_delivery: TAKE_OVER_EVENT_DELIVERY,
    finish_event_delivery: FINISH_EVENT_DELIVERY,
    release_event_delivery: RELEASE_EVENT_DELIVERY,
    prune_event_deliveries: PRUNE_EVENT_DELIVERIES,
    lock_invoice: "SELECT status, attempt_count, last_event_created, action_required FROM kavach_stripe_invoices WHERE id = ?",
    upsert_invoice: "INSERT INTO kavach_stripe_invoices (id, subscription_id, customer_id, status, billing_reason, amount_due, amount_paid, amount_remaining, currency, attempt_count, next_payment_attempt, hosted_invoice_url, invoice_pdf, created, action_required, last_event_created, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, unixepoch()) ON CONFLICT (id) DO UPDATE SET subscription_id = COALESCE(excluded.subscription_id, subscription_id), customer_id = COALESCE(excluded.customer_id, customer_id), status = excluded.status, billing_reason = excluded.billing_reason, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid, amount_remaining = excluded.amount_remaining, currency = excluded.currency, attempt_count = excluded.attempt_count, next_payment_attempt = excluded.next_payment_attempt, hosted_invoice_url = excluded.hosted_invoice_url, invoice_pdf = excluded.invoice_pdf, created = excluded.created, action_required = excluded.action_required, last_event_created = excluded.last_event_created, updated_at = excluded.updated_at",
    merge_invoice_action: "UPDATE kavach_stripe_invoices SET action_required = 1, updated_at = unixepoch() WHERE id = ?",
    record_issue_notification: "INSERT INTO kavach_stripe_events (id, type, created, state, notify_user_id, lease_until, received_at) VALUES (?, 'kavach.payment_issue', ?, 'notify', ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    payment_issue: PAYMENT_ISSUE,
    user_had_trial: USER_HAD_TRIAL,
    claim_trial: "INSERT INTO kavach_stripe_trial_grants (user_id, granted_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
    read_trial_grant: READ_TRIAL_GRANT,
    bind_trial_grant: BIND_TRIAL_GRANT,
    release_trial_claim: RELEASE_TRIAL_CLAIM,
    retake_trial_grant: RETAKE_TRIAL_GRANT,
    claim_customer: "INSERT INTO kavach_stripe_customer_claims (user_id, claimed_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
    take_over_customer_claim: "UPDATE kavach_stripe_customer_claims SET claimed_at = ? WHERE user_id = ? AND claimed_at < ?",
    release_customer_claim: "DELETE FROM kavach_stripe_customer_claims WHERE user_id = ?",
    release_notification: "UPDATE kavach_stripe_events SET lease_until = 0 WHERE id = ? AND state = 'notify'",
    prune_events: SQLITE_PRUNE_EVENTS,
    owed_notification: OWED_NOTIFICATION,
    owed_notification_ids: OWED_NOTIFICATION_IDS,
};

const SQLITE_UPSERT_SUBSCRIPTION: &str = "INSERT INTO kavach_stripe_subscriptions (id, customer_id, user_id, status, items, price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end, created, last_event_created, product_id, quantity, trial_start, ended_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, unixepoch()) ON CONFLICT (id) DO UPDATE SET user_id = COALESCE(excluded.user_id, user_id), customer_id = excluded.customer_id, status = excluded.status, items = excluded.items, price_id = excluded.price_id, current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, trial_end = excluded.trial_end, created = excluded.created, last_event_created = excluded.last_event_created, product_id = excluded.product_id, quantity = excluded.quantity, trial_start = excluded.trial_start, ended_at = excluded.ended_at, updated_at = excluded.updated_at";

/// The newest open invoice of subscription ? that failed at least once or
/// requires action (MySQL and SQLite; ids compare by bytes on both).
const PAYMENT_ISSUE: &str = "SELECT id, status, amount_due, currency, attempt_count, \
    next_payment_attempt, hosted_invoice_url, action_required FROM kavach_stripe_invoices \
    WHERE subscription_id = ? AND status = 'open' AND (attempt_count > 0 OR action_required <> 0) \
    ORDER BY created DESC, id DESC LIMIT 1";
const READ_EVENT_DELIVERY: &str =
    "SELECT state, lease_until FROM kavach_stripe_event_deliveries WHERE event_id = ?";
const TAKE_OVER_EVENT_DELIVERY: &str = "UPDATE kavach_stripe_event_deliveries SET lease_until = ? \
    WHERE event_id = ? AND state = 'processing' AND lease_until < ?";
const FINISH_EVENT_DELIVERY: &str =
    "UPDATE kavach_stripe_event_deliveries SET state = 'done', delivered_at = ? WHERE event_id = ?";
const RELEASE_EVENT_DELIVERY: &str =
    "DELETE FROM kavach_stripe_event_deliveries WHERE event_id = ? AND state = 'processing'";
const PRUNE_EVENT_DELIVERIES: &str =
    "DELETE FROM kavach_stripe_event_deliveries WHERE state = 'done' AND delivered_at < ?";
const OWED_NOTIFICATION: &str = "SELECT id FROM kavach_stripe_events \
    WHERE notify_user_id = ? AND state = 'notify' AND lease_until < ? LIMIT 1";
const OWED_NOTIFICATION_IDS: &str =
    "SELECT id FROM kavach_stripe_events WHERE notify_user_id = ? AND state = 'notify'";

/// One stored subscription as the billing status reads it.
const SUBSCRIPTION_RECORD_PG: &str = "SELECT id, status, items, price_id, product_id, quantity, \
    current_period_end, cancel_at_period_end, cancel_at, trial_start, trial_end, ended_at \
    FROM kavach_stripe_subscriptions WHERE id = $1";
const SUBSCRIPTION_RECORD: &str = "SELECT id, status, items, price_id, product_id, quantity, \
    current_period_end, cancel_at_period_end, cancel_at, trial_start, trial_end, ended_at \
    FROM kavach_stripe_subscriptions WHERE id = ?";
const USER_HAD_TRIAL: &str = "SELECT 1 FROM kavach_stripe_subscriptions WHERE user_id = ? \
    AND (trial_end IS NOT NULL OR trial_start IS NOT NULL) LIMIT 1";
const READ_TRIAL_GRANT: &str =
    "SELECT checkout_session_id, session_expires_at FROM kavach_stripe_trial_grants WHERE user_id = ?";
const BIND_TRIAL_GRANT: &str = "UPDATE kavach_stripe_trial_grants SET checkout_session_id = ?, \
    session_expires_at = ? WHERE user_id = ? AND checkout_session_id IS NULL";
const RELEASE_TRIAL_CLAIM: &str =
    "DELETE FROM kavach_stripe_trial_grants WHERE user_id = ? AND checkout_session_id IS NULL";
const RETAKE_TRIAL_GRANT: &str =
    "UPDATE kavach_stripe_trial_grants SET checkout_session_id = NULL, \
    session_expires_at = NULL, granted_at = ? WHERE user_id = ? AND checkout_session_id = ?";

/// The statements of the SQLite batch writer (`store::sqlite_writer`), run on
/// the raw handle. Parameters are numbered because some repeat.
#[derive(Debug)]
pub struct WriterSql {
    pub begin: &'static str,
    pub commit: &'static str,
    pub rollback: &'static str,
    pub savepoint: &'static str,
    pub rollback_to_savepoint: &'static str,
    pub release_savepoint: &'static str,
    /// One row: the user owning customer ?1, the ledger state of event ?2,
    /// and `last_event_created` of subscription ?3 (each NULL when absent).
    pub read_event_context: &'static str,
    pub upsert_subscription: &'static str,
    /// Computes user ?1's projection (the rule of `events::projection`: live
    /// before terminal, then the newest, then the greater id) and writes it
    /// only where it differs; returns a row only when it wrote.
    pub write_projection: &'static str,
    /// The ledger row of an event, written once in its final state.
    pub record_event: &'static str,
    pub prune_events: &'static str,
}

pub static SQLITE_WRITER: WriterSql = WriterSql {
    begin: "BEGIN IMMEDIATE",
    commit: "COMMIT",
    rollback: "ROLLBACK",
    savepoint: "SAVEPOINT kavach_event",
    rollback_to_savepoint: "ROLLBACK TO kavach_event",
    release_savepoint: "RELEASE kavach_event",
    read_event_context: "SELECT \
        (SELECT id FROM kavach_users WHERE stripe_customer_id = ?1), \
        (SELECT state FROM kavach_stripe_events WHERE id = ?2), \
        (SELECT last_event_created FROM kavach_stripe_subscriptions WHERE id = ?3)",
    upsert_subscription: SQLITE_UPSERT_SUBSCRIPTION,
    write_projection: "UPDATE kavach_users SET stripe_subscription_id = p.id, \
        stripe_subscription_status = p.status, stripe_price_id = p.price_id, \
        stripe_current_period_end = p.current_period_end, \
        stripe_cancel_at_period_end = p.scheduled, updated_at = unixepoch() \
        FROM (SELECT id, status, price_id, current_period_end, \
                (cancel_at_period_end <> 0 OR cancel_at IS NOT NULL) AS scheduled \
              FROM kavach_stripe_subscriptions WHERE user_id = ?1 \
              ORDER BY status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused', 'incomplete') DESC, \
                created DESC, id DESC LIMIT 1) AS p \
        WHERE kavach_users.id = ?1 AND ( \
            stripe_subscription_id IS NOT p.id \
            OR stripe_subscription_status IS NOT p.status \
            OR stripe_price_id IS NOT p.price_id \
            OR stripe_current_period_end IS NOT p.current_period_end \
            OR (stripe_cancel_at_period_end <> 0) IS NOT p.scheduled) \
        RETURNING 1",
    record_event: "INSERT INTO kavach_stripe_events \
        (id, type, created, state, detail, notify_user_id, lease_until, received_at, handled_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    prune_events: SQLITE_PRUNE_EVENTS,
};

const SQLITE_PRUNE_EVENTS: &str =
    "DELETE FROM kavach_stripe_events WHERE received_at < ? AND state IN ('done', 'ignored')";

/// The statements of the MySQL batch writer (`store::mysql_batch`): two
/// round trips per batch whatever its size (the reads, then the writes and
/// the commit). They go in the text protocol
/// with the values inlined as literals (`mysql_text`, `mysql_int`): no
/// prepared statement per batch size (sqlx's statement cache would churn, and
/// closing an evicted statement before the next command stalls on Nagle's
/// algorithm), and the writes and the commit travel as one multi-statement.
/// Strings are compared by the rules in Rust, not by the tables'
/// case-insensitive collation.
pub const MYSQL_ROLLBACK: &str = "ROLLBACK";

/// A string as a MySQL literal: its UTF-8 bytes in hex with the charset
/// introducer, so no byte of it is ever parsed as SQL (whatever `sql_mode`
/// says about backslashes).
pub fn mysql_text(value: &str) -> String {
    use std::fmt::Write;
    let mut literal = String::with_capacity(12 + value.len() * 2);
    literal.push_str("_utf8mb4 X'");
    for byte in value.bytes() {
        let _ = write!(literal, "{byte:02X}");
    }
    literal.push('\'');
    literal
}

pub fn mysql_optional_text(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_owned(), mysql_text)
}

pub fn mysql_int(value: Option<i64>) -> String {
    value.map_or_else(|| "NULL".to_owned(), |n| n.to_string())
}

/// The batch's first round trip: bounds its lock waits to 2 s (a row an
/// app's own transaction holds for long must not stall every webhook behind
/// the batch; the statements that end the batch restore the default, and a
/// connection whose batch failed is closed), begins its transaction, locks
/// and reads the users owning the `customers` (lists of literals), then the
/// batch's own `subscriptions` (those that exist), each in id order in every
/// batch and instance; then reads the users' other subscriptions (without a
/// lock: every writer of a user's subscriptions holds the user's row) and
/// the ledger rows of the `events`. Every read goes through an index (an
/// `OR` of the two subscription reads would scan the table). Each row starts
/// with a tag saying which read it belongs to: `u` (id, customer, then the
/// projection's five columns in Rust's encoding), `s` (id, user, last
/// event, status, created, price, period end, cancel at period end, cancel
/// at), `l` (id, state). Reading user columns outside the customer index
/// makes InnoDB visit, and lock, the rows themselves.
pub fn mysql_begin_and_read(customers: &str, subscriptions: &str, events: &str) -> String {
    format!(
        "SET SESSION innodb_lock_wait_timeout = 2; START TRANSACTION; \
         SELECT 'u', id, stripe_customer_id, stripe_subscription_id, stripe_subscription_status, \
         stripe_price_id, CAST(UNIX_TIMESTAMP(stripe_current_period_end) AS SIGNED), \
         stripe_cancel_at_period_end <> 0 \
         FROM kavach_users WHERE stripe_customer_id IN ({customers}) \
         AND BINARY stripe_customer_id IN ({customers}) ORDER BY id FOR UPDATE; \
         SELECT 's', id, user_id, last_event_created, status, created, price_id, \
         current_period_end, cancel_at_period_end <> 0, cancel_at \
         FROM kavach_stripe_subscriptions WHERE id IN ({subscriptions}) ORDER BY id FOR UPDATE; \
         SELECT 's', s.id, s.user_id, s.last_event_created, s.status, s.created, s.price_id, \
         s.current_period_end, s.cancel_at_period_end <> 0, s.cancel_at \
         FROM kavach_users AS u JOIN kavach_stripe_subscriptions AS s ON s.user_id = u.id \
         WHERE u.stripe_customer_id IN ({customers}) AND BINARY u.stripe_customer_id IN ({customers}); \
         SELECT 'l', id, state FROM kavach_stripe_events WHERE id IN ({events})"
    )
}

/// Upserts subscriptions, each row `(id, customer_id, user_id, status, items,
/// price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end,
/// created, last_event_created, product_id, quantity, trial_start, ended_at)`,
/// with the upsert rule of `MYSQL`.
pub fn mysql_upsert_subscriptions(rows: &[String]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|row| format!("({row}, UNIX_TIMESTAMP())"))
        .collect();
    format!(
        "INSERT INTO kavach_stripe_subscriptions (id, customer_id, user_id, status, items, \
         price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end, created, \
         last_event_created, product_id, quantity, trial_start, ended_at, updated_at) \
         VALUES {} ON DUPLICATE KEY UPDATE \
         user_id = COALESCE(VALUES(user_id), user_id), customer_id = VALUES(customer_id), \
         status = VALUES(status), items = VALUES(items), price_id = VALUES(price_id), \
         current_period_end = VALUES(current_period_end), \
         cancel_at_period_end = VALUES(cancel_at_period_end), cancel_at = VALUES(cancel_at), \
         trial_end = VALUES(trial_end), created = VALUES(created), \
         last_event_created = VALUES(last_event_created), product_id = VALUES(product_id), \
         quantity = VALUES(quantity), trial_start = VALUES(trial_start), \
         ended_at = VALUES(ended_at), updated_at = VALUES(updated_at)",
        values.join(", ")
    )
}

/// Writes users' projections in one statement, each row `(user,
/// subscription, status, price, period end in Unix seconds, scheduled)`.
pub fn mysql_update_projections(rows: &[[String; 6]]) -> String {
    let selects: Vec<String> = rows
        .iter()
        .enumerate()
        .map(
            |(i, [user, subscription, status, price, period_end, scheduled])| {
                if i == 0 {
                    format!(
                        "SELECT {user} AS user_id, {subscription} AS subscription_id, \
                     {status} AS status, {price} AS price_id, {period_end} AS period_end, \
                     {scheduled} AS scheduled"
                    )
                } else {
                    format!(
                    "SELECT {user}, {subscription}, {status}, {price}, {period_end}, {scheduled}"
                )
                }
            },
        )
        .collect();
    format!(
        "UPDATE kavach_users AS u JOIN ({}) AS p ON u.id = p.user_id \
         SET u.stripe_subscription_id = p.subscription_id, u.stripe_subscription_status = p.status, \
         u.stripe_price_id = p.price_id, u.stripe_current_period_end = FROM_UNIXTIME(p.period_end), \
         u.stripe_cancel_at_period_end = p.scheduled, u.updated_at = UTC_TIMESTAMP(3)",
        selects.join(" UNION ALL ")
    )
}

/// Inserts ledger rows in their final state, each row `(id, type, created,
/// state, detail, notify_user_id, lease_until, received_at, handled_at)`.
pub fn mysql_insert_events(rows: &[String]) -> String {
    let values: Vec<String> = rows.iter().map(|row| format!("({row})")).collect();
    format!(
        "INSERT INTO kavach_stripe_events \
         (id, type, created, state, detail, notify_user_id, lease_until, received_at, handled_at) \
         VALUES {}",
        values.join(", ")
    )
}

/// The batch's writes and its commit, as one multi-statement round trip; a
/// statement that fails stops it before the commit.
pub fn mysql_write_and_commit(statements: &[String]) -> String {
    let mut text = statements.join("; ");
    if !text.is_empty() {
        text.push_str("; ");
    }
    // The lock wait set by `mysql_begin_and_read` is the writer's alone.
    text.push_str("COMMIT; SET SESSION innodb_lock_wait_timeout = DEFAULT");
    text
}

/// `values` (literals) as the inside of an `IN (...)` list (never empty: `NULL` matches
/// nothing).
pub fn mysql_in_list(values: &[String]) -> String {
    if values.is_empty() {
        "NULL".to_owned()
    } else {
        values.join(", ")
    }
}

/// One round trip per batch on Postgres: the batch goes in as one JSON
/// document, in the simple query protocol (no prepared statement, so any
/// pooler mode works), and comes back as one row per event. `batch_json`
/// must hold no `$` (see `postgres_batch`), so the dollar quote cannot end
/// early whatever the events carry.
pub fn postgres_apply_events_call(batch_json: &str, prune_before: Option<i64>) -> String {
    let prune = prune_before.map_or_else(|| "NULL".to_owned(), |before| before.to_string());
    format!(
        "SELECT out_ordinal, out_outcome, out_user, out_error \
         FROM kavach_stripe_apply_events($kavach_batch${batch_json}$kavach_batch$::jsonb, {prune})"
    )
}

/// The Postgres batch function (schema version 2). Each event runs in its own
/// subtransaction (the `EXCEPTION` block), so one that fails rolls back
/// alone; deadlocks, serialization failures and cancellations are raised, so
/// the whole batch is retried. Users, then subscriptions, are locked first,
/// each in id order, so concurrent batches from any number of instances
/// cannot deadlock on them. The rules are those of `events::ordering` and
/// `events::projection`, checked against them by the differential test.
/// Outcomes: `applied` (with `out_user` when the projection changed),
/// `duplicate`, `declined` (needs the general path), `failed` (with why).
const POSTGRES_APPLY_EVENTS_FUNCTION: &str = r#"CREATE OR REPLACE FUNCTION kavach_stripe_apply_events(
    p_batch jsonb, p_prune_before bigint)
RETURNS TABLE (out_ordinal integer, out_outcome text, out_user text, out_error text)
LANGUAGE plpgsql AS $function$
DECLARE
    e record;
    v_owner text;
    v_state text;
    v_last bigint;
    v_changed bigint;
BEGIN
    -- A row another transaction holds for long (an app's own transaction on
    -- kavach_users) must not stall every webhook behind this batch.
    PERFORM set_config('lock_timeout', '2s', true);
    IF p_prune_before IS NOT NULL THEN
        BEGIN
            DELETE FROM kavach_stripe_events
                WHERE received_at < p_prune_before AND state IN ('done', 'ignored');
        EXCEPTION
            WHEN deadlock_detected OR serialization_failure OR lock_not_available
                OR query_canceled OR admin_shutdown THEN RAISE;
            WHEN OTHERS THEN NULL;
        END;
    END IF;
    PERFORM 1 FROM kavach_users
        WHERE stripe_customer_id IN (SELECT b->>'customer_id' FROM jsonb_array_elements(p_batch) AS b)
        ORDER BY id COLLATE "C" FOR UPDATE;
    PERFORM 1 FROM kavach_stripe_subscriptions
        WHERE id IN (SELECT b->>'subscription_id' FROM jsonb_array_elements(p_batch) AS b)
        ORDER BY id COLLATE "C" FOR UPDATE;
    FOR e IN SELECT * FROM jsonb_to_recordset(p_batch) AS r(
            n integer, event_id text, event_type text, event_created bigint,
            subscription_id text, customer_id text, status text, items text, price_id text,
            current_period_end bigint, cancel_at_period_end boolean, cancel_at bigint,
            trial_end bigint, created bigint, product_id text, quantity bigint,
            trial_start bigint, ended_at bigint, notify_lease_until bigint, received_at bigint)
        ORDER BY r.n
    LOOP
        out_ordinal := e.n;
        out_user := NULL;
        out_error := NULL;
        BEGIN
            SELECT state INTO v_state FROM kavach_stripe_events WHERE id = e.event_id;
            IF FOUND THEN
                -- `processing` or `notify`: another delivery holds it.
                out_outcome := CASE WHEN v_state IN ('done', 'ignored') THEN 'duplicate' ELSE 'declined' END;
            ELSE
                SELECT id INTO v_owner FROM kavach_users WHERE stripe_customer_id = e.customer_id;
                IF NOT FOUND THEN
                    out_outcome := 'declined';
                ELSE
                    SELECT last_event_created INTO v_last
                        FROM kavach_stripe_subscriptions WHERE id = e.subscription_id;
                    IF v_last IS NOT NULL AND e.event_created = v_last THEN
                        out_outcome := 'declined';
                    ELSIF v_last IS NOT NULL AND e.event_created < v_last THEN
                        INSERT INTO kavach_stripe_events
                            (id, type, created, state, detail, notify_user_id, lease_until, received_at, handled_at)
                            VALUES (e.event_id, e.event_type, e.event_created, 'done',
                                'older than the stored state', NULL, e.received_at, e.received_at, e.received_at);
                        out_outcome := 'applied';
                    ELSE
                        INSERT INTO kavach_stripe_subscriptions (id, customer_id, user_id, status, items,
                                price_id, current_period_end, cancel_at_period_end, cancel_at, trial_end,
                                created, last_event_created, product_id, quantity, trial_start, ended_at,
                                updated_at)
                            VALUES (e.subscription_id, e.customer_id, v_owner, e.status, e.items,
                                e.price_id, e.current_period_end, e.cancel_at_period_end, e.cancel_at,
                                e.trial_end, e.created, e.event_created, e.product_id, e.quantity,
                                e.trial_start, e.ended_at, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT))
                            ON CONFLICT (id) DO UPDATE SET
                                user_id = COALESCE(EXCLUDED.user_id, kavach_stripe_subscriptions.user_id),
                                customer_id = EXCLUDED.customer_id, status = EXCLUDED.status,
                                items = EXCLUDED.items, price_id = EXCLUDED.price_id,
                                current_period_end = EXCLUDED.current_period_end,
                                cancel_at_period_end = EXCLUDED.cancel_at_period_end,
                                cancel_at = EXCLUDED.cancel_at, trial_end = EXCLUDED.trial_end,
                                created = EXCLUDED.created, last_event_created = EXCLUDED.last_event_created,
                                product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity,
                                trial_start = EXCLUDED.trial_start, ended_at = EXCLUDED.ended_at,
                                updated_at = EXCLUDED.updated_at;
                        UPDATE kavach_users AS u SET
                                stripe_subscription_id = p.id, stripe_subscription_status = p.status,
                                stripe_price_id = p.price_id,
                                stripe_current_period_end = to_timestamp(CAST(p.current_period_end AS DOUBLE PRECISION)),
                                stripe_cancel_at_period_end = p.scheduled, updated_at = now()
                            FROM (SELECT s.id, s.status, s.price_id, s.current_period_end,
                                        (s.cancel_at_period_end OR s.cancel_at IS NOT NULL) AS scheduled
                                    FROM kavach_stripe_subscriptions AS s WHERE s.user_id = v_owner
                                    ORDER BY s.status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused', 'incomplete') DESC,
                                        s.created DESC, s.id COLLATE "C" DESC
                                    LIMIT 1) AS p
                            WHERE u.id = v_owner AND (
                                u.stripe_subscription_id IS DISTINCT FROM p.id
                                OR u.stripe_subscription_status IS DISTINCT FROM p.status
                                OR u.stripe_price_id IS DISTINCT FROM p.price_id
                                OR CAST(EXTRACT(EPOCH FROM u.stripe_current_period_end) AS BIGINT)
                                    IS DISTINCT FROM p.current_period_end
                                OR u.stripe_cancel_at_period_end IS DISTINCT FROM p.scheduled);
                        GET DIAGNOSTICS v_changed = ROW_COUNT;
                        IF v_changed > 0 THEN
                            out_user := v_owner;
                        END IF;
                        INSERT INTO kavach_stripe_events
                            (id, type, created, state, detail, notify_user_id, lease_until, received_at, handled_at)
                            VALUES (e.event_id, e.event_type, e.event_created,
                                CASE WHEN out_user IS NOT NULL AND e.notify_lease_until IS NOT NULL
                                    THEN 'notify' ELSE 'done' END,
                                NULL,
                                CASE WHEN e.notify_lease_until IS NOT NULL THEN out_user END,
                                CASE WHEN out_user IS NOT NULL AND e.notify_lease_until IS NOT NULL
                                    THEN e.notify_lease_until ELSE e.received_at END,
                                e.received_at, e.received_at);
                        out_outcome := 'applied';
                    END IF;
                END IF;
            END IF;
        EXCEPTION
            WHEN unique_violation THEN
                -- Another delivery of this event committed meanwhile.
                out_outcome := 'declined';
                out_user := NULL;
            WHEN deadlock_detected OR serialization_failure OR lock_not_available
                OR query_canceled OR admin_shutdown THEN
                RAISE;
            WHEN OTHERS THEN
                out_outcome := 'failed';
                out_user := NULL;
                out_error := SQLSTATE || ': ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$function$"#;
