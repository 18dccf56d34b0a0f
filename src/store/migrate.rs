//! Versioned, idempotent migrations, run by the native side itself. One
//! process migrates at a time: a transaction-level advisory lock on Postgres
//! (the whole migration is one transaction, so it also holds through a pooler
//! in transaction mode), a named lock on MySQL, `BEGIN IMMEDIATE` on SQLite.

use sqlx::{Acquire, Connection, Row};

use std::time::Duration;

use super::dialect::SUBSCRIPTION_V4_COLUMNS;
use super::server_writer::is_transient;
use super::{DbPool, Dialect, Store, USERS_STRIPE_COLUMNS};
use crate::error::{BillingError, BillingResult};
use crate::events::{main_item, SubscriptionItem};

/// The schema version this build of the package writes.
pub const SCHEMA_VERSION: i64 = 6;

/// Any fixed 64-bit key; it names this package's migration lock on Postgres.
const PG_LOCK_KEY: i64 = 0x6b61_7661_6368_5354; // "kavachST"
const MYSQL_LOCK_NAME: &str = "kavach_stripe_migrations";
const MYSQL_LOCK_WAIT_SECS: i64 = 60;

/// Attempts of a migration that fails on a lost connection, a deadlock or a
/// serialization failure (an app starting while its database restarts, or a
/// pooler dropping it); anything else fails at once. Waits grow by 250 ms
/// (3.75 s in all): three attempts within a second could all meet the same
/// outage, as the chaos run's connection killer showed.
const MIGRATION_ATTEMPTS: u32 = 6;
const MIGRATION_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Why a migration attempt failed, and whether trying again may help.
struct MigrationFailure {
    error: BillingError,
    transient: bool,
}

impl From<BillingError> for MigrationFailure {
    fn from(error: BillingError) -> Self {
        Self {
            error,
            transient: false,
        }
    }
}

fn failed(step: &str, error: sqlx::Error) -> MigrationFailure {
    MigrationFailure {
        transient: is_transient(&error),
        error: BillingError::Migration(format!("{step}: {error}")),
    }
}

/// The statements that bring the schema from `from` to `SCHEMA_VERSION`, and
/// the columns `kavach_users` lacks. Every statement is idempotent on its own
/// (or runs only when its column is missing), so a run interrupted half-way
/// (MySQL DDL does not roll back) completes later.
fn plan(
    sql: &Dialect,
    existing_columns: &[String],
    subscription_columns: &[String],
    event_indexes: &[String],
    from: i64,
) -> Vec<&'static str> {
    let mut statements = Vec::new();
    if existing_columns.is_empty() {
        // No kavach_users yet (a standalone database): create it whole.
        statements.push(sql.create_users_table);
    } else {
        for (i, column) in USERS_STRIPE_COLUMNS.iter().enumerate() {
            if !existing_columns
                .iter()
                .any(|c| c.eq_ignore_ascii_case(column))
            {
                statements.extend_from_slice(sql.add_users_column[i]);
            }
        }
    }
    if from < 1 {
        statements.extend_from_slice(sql.migration_v1);
    }
    if from < 2 {
        statements.extend_from_slice(sql.migration_v2);
    }
    if from < 3 {
        statements.extend_from_slice(sql.migration_v3);
    }
    if from < 4 {
        for (i, column) in SUBSCRIPTION_V4_COLUMNS.iter().enumerate() {
            if !subscription_columns
                .iter()
                .any(|c| c.eq_ignore_ascii_case(column))
            {
                statements.push(sql.add_subscription_column[i]);
            }
        }
        statements.extend_from_slice(sql.migration_v4);
        if !event_indexes
            .iter()
            .any(|name| name.eq_ignore_ascii_case(NOTIFY_INDEX))
        {
            statements.push(sql.create_notify_index);
        }
    }
    if from < 5 {
        statements.extend_from_slice(sql.migration_v5);
    }
    if from < 6 {
        statements.extend_from_slice(sql.migration_v6);
    }
    statements
}

/// Finds the notifications a user is still owed (`Dialect::owed_notification`).
const NOTIFY_INDEX: &str = "kavach_stripe_events_notify";

/// Product and quantity of the main item (`SubscriptionSnapshot::main_item`)
/// of a row's stored items, for rows written before schema version 4.
fn backfill_values(items: &str) -> (Option<String>, Option<i64>) {
    let items: Vec<SubscriptionItem> = serde_json::from_str(items).unwrap_or_default();
    let main = main_item(&items);
    (
        main.and_then(|i| i.product.clone()),
        main.and_then(|i| i.quantity),
    )
}

/// Whether a migration may create `kavach_users`. A kavachOS app's host
/// creates it with its own columns; only a standalone database gets it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersTable {
    CreateIfMissing,
    MustExist,
}

pub(super) async fn run(store: &Store, users: UsersTable) -> BillingResult<()> {
    let mut attempt = 1;
    loop {
        match run_once(store, users).await {
            Ok(()) => return Ok(()),
            Err(failure) if failure.transient && attempt < MIGRATION_ATTEMPTS => {
                tokio::time::sleep(MIGRATION_RETRY_AFTER * attempt).await;
                attempt += 1;
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

async fn run_once(store: &Store, users: UsersTable) -> Result<(), MigrationFailure> {
    let sql = store.sql;
    match &store.pool {
        DbPool::Postgres(pool) => {
            // Postgres DDL is transactional: the whole migration commits or
            // none of it, and the lock goes with the transaction.
            let mut tx = pool.begin().await.map_err(|e| failed("connect", e))?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .persistent(false)
                .bind(PG_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed("lock", e))?;
            apply(
                sql,
                users,
                tx.acquire().await.map_err(|e| failed("lock", e))?,
            )
            .await?;
            tx.commit().await.map_err(|e| failed("commit", e))
        }
        DbPool::MySql(pool) => {
            let mut conn = pool.acquire().await.map_err(|e| failed("connect", e))?;
            let granted: Option<i64> = sqlx::query("SELECT CAST(GET_LOCK(?, ?) AS SIGNED)")
                .bind(MYSQL_LOCK_NAME)
                .bind(MYSQL_LOCK_WAIT_SECS)
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| failed("lock", e))?;
            if granted != Some(1) {
                return Err(BillingError::Migration(format!(
                    "another process held the migration lock for {MYSQL_LOCK_WAIT_SECS}s"
                ))
                .into());
            }
            let result = apply(sql, users, &mut *conn).await;
            let unlock = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(MYSQL_LOCK_NAME)
                .execute(&mut *conn)
                .await;
            if unlock.is_err() {
                conn.detach();
            }
            result
        }
        DbPool::Sqlite(pool) => {
            let mut conn = pool.acquire().await.map_err(|e| failed("connect", e))?;
            // SQLite DDL is transactional: the whole migration commits or none of it.
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| failed("lock", e))?;
            apply(
                sql,
                users,
                tx.acquire().await.map_err(|e| failed("lock", e))?,
            )
            .await?;
            tx.commit().await.map_err(|e| failed("commit", e))
        }
    }
}

/// Reads the current state and applies the plan on one connection (which
/// holds the migration lock).
async fn apply<'c, C>(
    sql: &Dialect,
    users: UsersTable,
    conn: &'c mut C,
) -> Result<(), MigrationFailure>
where
    C: Connection,
    C::Database: sqlx::database::HasStatementCache,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    i64: for<'r> sqlx::Decode<'r, C::Database>
        + sqlx::Type<C::Database>
        + sqlx::Encode<'static, C::Database>,
    String: for<'r> sqlx::Decode<'r, C::Database>
        + sqlx::Type<C::Database>
        + sqlx::Encode<'static, C::Database>,
    Option<String>: sqlx::Encode<'static, C::Database> + sqlx::Type<C::Database>,
    Option<i64>: sqlx::Encode<'static, C::Database> + sqlx::Type<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    // Unnamed statements: a pooler in transaction mode may hand this client
    // another server connection later, where a named one would not exist.
    sqlx::query(sql.create_schema_table)
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(|e| failed("create kavach_stripe_schema", e))?;
    let version: i64 = sqlx::query(sql.schema_version)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| failed("read schema version", e))?;
    if version > SCHEMA_VERSION {
        return Err(BillingError::Migration(format!(
            "the database has schema version {version}, newer than this kavachos-stripe ({SCHEMA_VERSION}); upgrade the package"
        ))
        .into());
    }
    let columns: Vec<String> = sqlx::query(sql.users_columns)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .and_then(|rows| rows.iter().map(|row| row.try_get(0)).collect())
        .map_err(|e| failed("read kavach_users columns", e))?;
    if columns.is_empty() && users == UsersTable::MustExist {
        return Err(BillingError::Migration(
            "the table kavach_users does not exist: run the kavachOS app's own migrations first (its host creates kavach_users), or migrate with --standalone for a database this package owns".into(),
        )
        .into());
    }
    let subscription_columns: Vec<String> = sqlx::query(sql.subscription_columns)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .and_then(|rows| rows.iter().map(|row| row.try_get(0)).collect())
        .map_err(|e| failed("read kavach_stripe_subscriptions columns", e))?;
    let event_indexes: Vec<String> = sqlx::query(sql.event_indexes)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .and_then(|rows| rows.iter().map(|row| row.try_get(0)).collect())
        .map_err(|e| failed("read kavach_stripe_events indexes", e))?;
    for statement in plan(
        sql,
        &columns,
        &subscription_columns,
        &event_indexes,
        version,
    ) {
        sqlx::query(statement)
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(|e| failed(first_line(statement), e))?;
    }
    if version < 4 {
        // Rows stored before version 4 keep their items: fill product and
        // quantity from them, by the rule the writers use.
        let rows: Vec<(String, String)> = sqlx::query(sql.backfill_select)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect()
            })
            .map_err(|e| failed("read subscriptions to fill", e))?;
        for (id, items) in rows {
            let (product, quantity) = backfill_values(&items);
            if product.is_none() && quantity.is_none() {
                continue;
            }
            sqlx::query(sql.backfill_update)
                .persistent(false)
                .bind(product)
                .bind(quantity)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(|e| failed("fill product and quantity", e))?;
        }
    }
    if version < SCHEMA_VERSION {
        sqlx::query(sql.record_schema_version)
            .persistent(false)
            .bind(SCHEMA_VERSION)
            .execute(&mut *conn)
            .await
            .map_err(|e| failed("record schema version", e))?;
    }
    Ok(())
}

fn first_line(statement: &str) -> &str {
    statement
        .lines()
        .next()
        .unwrap_or(statement)
        .trim_end_matches(" (")
}

#[cfg(test)]
mod tests {
    use super::super::dialect::{MYSQL, POSTGRES, SQLITE};
    use super::*;

    #[test]
    fn plan_adds_only_missing_columns() {
        let existing: Vec<String> = vec!["id".into(), "email".into(), "stripe_customer_id".into()];
        let statements = plan(&SQLITE, &existing, &[], &[], SCHEMA_VERSION);
        assert!(!statements
            .iter()
            .any(|s| s.contains("ADD COLUMN stripe_customer_id")));
        assert!(statements
            .iter()
            .any(|s| s.contains("ADD COLUMN stripe_price_id")));
        let all: Vec<String> = USERS_STRIPE_COLUMNS.iter().map(|c| c.to_string()).collect();
        assert!(plan(&POSTGRES, &all, &[], &[], SCHEMA_VERSION).is_empty());
        assert_eq!(
            plan(&POSTGRES, &[], &[], &[], SCHEMA_VERSION)[0],
            POSTGRES.create_users_table
        );
    }

    #[test]
    fn version_4_adds_only_missing_subscription_columns() {
        let users: Vec<String> = USERS_STRIPE_COLUMNS.iter().map(|c| c.to_string()).collect();
        let half: Vec<String> = vec!["id".into(), "product_id".into(), "QUANTITY".into()];
        let statements = plan(&MYSQL, &users, &half, &[], 3);
        assert!(statements.contains(&MYSQL.create_notify_index));
        assert!(!statements
            .iter()
            .any(|s| s.contains("ADD COLUMN product_id")));
        assert!(!statements.iter().any(|s| s.contains("ADD COLUMN quantity")));
        assert!(statements
            .iter()
            .any(|s| s.contains("ADD COLUMN trial_start")));
        assert!(statements.iter().any(|s| s.contains("ADD COLUMN ended_at")));
        assert!(statements
            .iter()
            .any(|s| s.contains("CREATE TABLE IF NOT EXISTS kavach_stripe_trial_grants")));
        let all: Vec<String> = SUBSCRIPTION_V4_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(!plan(&MYSQL, &users, &all, &[NOTIFY_INDEX.to_owned()], 3)
            .iter()
            .any(|s| s.contains("ADD COLUMN")));
    }

    #[test]
    fn the_backfill_takes_the_main_item() {
        let items = r#"[{"price":"p1","product":"prod_1","quantity":1,"current_period_end":10},
            {"price":"p2","product":"prod_2","quantity":3,"current_period_end":20},
            {"price":"p3","product":"prod_3","quantity":4,"current_period_end":20}]"#;
        assert_eq!(backfill_values(items), (Some("prod_2".into()), Some(3)));
        assert_eq!(backfill_values("[]"), (None, None));
        assert_eq!(backfill_values("not json"), (None, None));
    }

    #[test]
    fn sqlite_adds_a_unique_index_after_the_customer_column() {
        let statements = plan(&SQLITE, &["id".to_owned()], &[], &[], SCHEMA_VERSION);
        let add = statements
            .iter()
            .position(|s| s.contains("ADD COLUMN stripe_customer_id"))
            .unwrap();
        assert!(statements[add + 1].starts_with("CREATE UNIQUE INDEX"));
        assert!(!SQLITE.add_users_column[0][0].contains("UNIQUE"));
        assert!(MYSQL.add_users_column[0][0].contains("VARCHAR(255) UNIQUE"));
    }
}
