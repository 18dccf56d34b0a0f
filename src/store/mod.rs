//! The native database store: one sqlx pool per billing instance, on Postgres,
//! MySQL/MariaDB or SQLite. SQL lives in `dialect`; the code that runs it is
//! written once and expanded per pool type by `dispatch!`.

mod dialect;
mod event_write;
pub mod migrate;
mod mysql_batch;
mod postgres_batch;
mod server_writer;
mod sqlite_locks;
mod sqlite_raw;
mod sqlite_writer;
mod target;

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

pub use dialect::{Dialect, USERS_STRIPE_COLUMNS};
pub use event_write::{SubscriptionEventWrite, WriteOutcome, WriteReply};
pub use server_writer::{ServerDatabase, ServerWriter};
pub use sqlite_writer::SqliteWriter;
pub use target::{DatabaseOptions, DatabaseSource, DatabaseTarget, Provider};

use crate::error::{BillingError, BillingResult};

/// How long a SQLite writer waits for the lock held by another connection or
/// process (the host's better-sqlite3 included) before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const SERVER_POOL_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

enum DbPool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Runs the same body against whichever pool the store holds; `$pool` is bound
/// to the concrete pool, so every query type-checks for each database.
macro_rules! dispatch {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            DbPool::Postgres($pool) => $body,
            DbPool::MySql($pool) => $body,
            DbPool::Sqlite($pool) => $body,
        }
    };
}

mod event_deliveries;
mod invoices;
mod ledger;
mod subscriptions;
mod trials;

pub use event_deliveries::DeliveryClaim;
pub use invoices::{InvoiceApplied, IssueNotificationClaim};
pub use ledger::{Claim, EventState};
pub use subscriptions::{
    ApplyOutcome, Fetched, SubscriptionChange, SubscriptionRecord, SubscriptionWrite,
};
pub use trials::TrialGrant;

/// Opens a write transaction. SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`), so concurrent writers wait for the busy timeout
/// instead of failing when a read transaction tries to upgrade.
trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin()
    }
}

impl BeginWrite for MySqlPool {
    type Db = sqlx::MySql;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// The group-commit writer for subscription events: a thread on SQLite
/// (whose calls block), a task on the servers.
pub enum EventWriter {
    Sqlite(SqliteWriter),
    Server(ServerWriter),
}

impl EventWriter {
    /// Queues an event; `reply` is called once, after the commit that holds it.
    pub fn submit(&self, write: SubscriptionEventWrite, reply: WriteReply) {
        match self {
            Self::Sqlite(writer) => writer.submit(write, reply),
            Self::Server(writer) => writer.submit(write, reply),
        }
    }

    /// Stops taking work and waits until what was queued is answered.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(writer) => writer.close().await,
            Self::Server(writer) => writer.close().await,
        }
    }
}

pub struct Store {
    pool: DbPool,
    sql: &'static Dialect,
    writer: EventWriter,
}

/// A `kavach_users` row as this package reads it (timestamps in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub stripe_subscription_status: Option<String>,
    pub stripe_price_id: Option<String>,
    pub stripe_current_period_end: Option<i64>,
    pub stripe_cancel_at_period_end: bool,
}

/// Reads a row of `Dialect::select_user`.
fn user_from_row<R: Row>(row: &R) -> Result<UserRecord, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(UserRecord {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        name: row.try_get(2)?,
        stripe_customer_id: row.try_get(3)?,
        stripe_subscription_id: row.try_get(4)?,
        stripe_subscription_status: row.try_get(5)?,
        stripe_price_id: row.try_get(6)?,
        stripe_current_period_end: row.try_get(7)?,
        stripe_cancel_at_period_end: row.try_get(8)?,
    })
}

impl Store {
    /// Opens the pool (failing fast when the server is unreachable).
    pub async fn connect(target: &DatabaseTarget) -> BillingResult<Self> {
        let connect_error = |e: sqlx::Error| BillingError::Database(format!("cannot connect: {e}"));
        let (pool, sql) = match target {
            DatabaseTarget::Postgres { url } => {
                let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
                let pool = PgPoolOptions::new()
                    .max_connections(SERVER_POOL_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                (DbPool::Postgres(pool), &dialect::POSTGRES)
            }
            DatabaseTarget::Mysql { url } => {
                // DATETIME columns hold UTC: every session runs in UTC.
                let options = MySqlConnectOptions::from_str(url)
                    .map_err(connect_error)?
                    .timezone(Some("+00:00".to_owned()))
                    .charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(SERVER_POOL_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // Reads after a row lock must see what was committed before
                    // it (as on Postgres), not a snapshot from earlier.
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::Executor::execute(
                                &mut *conn,
                                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                (DbPool::MySql(pool), &dialect::MYSQL)
            }
            DatabaseTarget::SqliteFile { path } => {
                // WAL and a busy timeout let the host's better-sqlite3 and this
                // pool share the file; FULL sync makes a committed webhook durable.
                // Locks that hold against the host's SQLite copy in this process
                // (see sqlite_locks) need exactly one connection per file; SQLite
                // serialises writers anyway.
                sqlite_locks::install_process_safe_locks().map_err(|e| {
                    BillingError::Database(format!("cannot set up SQLite locking: {e}"))
                })?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                // No ping before each acquire: it is a hop to the connection's
                // worker thread and can only fail if that thread died.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                (DbPool::Sqlite(pool), &dialect::SQLITE)
            }
            DatabaseTarget::SqliteMemory => {
                // An in-memory database dies with its last connection: keep
                // exactly one, and never let the pool retire it.
                let options =
                    SqliteConnectOptions::from_str("sqlite::memory:").map_err(connect_error)?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                (DbPool::Sqlite(pool), &dialect::SQLITE)
            }
        };
        let runtime = tokio::runtime::Handle::current();
        let writer = match &pool {
            DbPool::Sqlite(pool) => {
                EventWriter::Sqlite(SqliteWriter::start(pool.clone(), runtime)?)
            }
            DbPool::Postgres(pool) => EventWriter::Server(ServerWriter::start(
                ServerDatabase::Postgres(pool.clone()),
                &runtime,
            )),
            DbPool::MySql(pool) => EventWriter::Server(ServerWriter::start(
                ServerDatabase::MySql(pool.clone()),
                &runtime,
            )),
        };
        Ok(Self { pool, sql, writer })
    }

    /// The group-commit writer for subscription events.
    pub fn batch_writer(&self) -> &EventWriter {
        &self.writer
    }

    pub fn dialect_name(&self) -> &'static str {
        self.sql.name
    }

    /// Creates or upgrades the schema; safe when several processes start at once.
    pub async fn migrate(&self) -> BillingResult<()> {
        migrate::run(self, migrate::UsersTable::CreateIfMissing).await
    }

    /// `migrate`, choosing whether `kavach_users` may be created.
    pub async fn migrate_with(&self, users: migrate::UsersTable) -> BillingResult<()> {
        migrate::run(self, users).await
    }

    /// The schema version recorded in the database (0 before any migration).
    pub async fn schema_version(&self) -> BillingResult<i64> {
        let version = dispatch!(self, pool => {
            sqlx::query(self.sql.schema_version)
                .persistent(false)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
        });
        // No schema table yet: nothing was ever migrated.
        Ok(version.unwrap_or(0))
    }

    pub async fn find_user(&self, user_id: &str) -> BillingResult<Option<UserRecord>> {
        let row = dispatch!(self, pool => {
            sqlx::query(self.sql.select_user)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
                .map(|row| user_from_row(&row))
                .transpose()?
        });
        Ok(row)
    }

    /// Sets the user's customer id unless another one is already linked.
    /// Returns whether the user now holds `customer_id`.
    pub async fn link_customer(&self, user_id: &str, customer_id: &str) -> BillingResult<bool> {
        let affected = dispatch!(self, pool => {
            sqlx::query(self.sql.link_customer)
                .bind(customer_id)
                .bind(user_id)
                .bind(customer_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            return Ok(true);
        }
        // No row matched: the user is gone or holds another customer; say which.
        Ok(self
            .find_user(user_id)
            .await?
            .is_some_and(|user| user.stripe_customer_id.as_deref() == Some(customer_id)))
    }

    /// Creates or updates a user row (standalone deployments own `kavach_users`).
    pub async fn upsert_user(
        &self,
        user_id: &str,
        email: &str,
        name: Option<&str>,
    ) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.upsert_user)
                .bind(user_id)
                .bind(email)
                .bind(name)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Closes every connection; later calls fail with `closed`. The writer
    /// first commits and answers what is queued.
    pub async fn close(&self) {
        self.writer.close().await;
        dispatch!(self, pool => pool.close().await)
    }

    pub fn is_closed(&self) -> bool {
        dispatch!(self, pool => pool.is_closed())
    }
}

impl Store {
    /// Takes the right to create `user_id`'s Stripe customer. A claim older
    /// than `stale_before` belonged to a process that died and is taken over.
    pub async fn claim_customer_creation(
        &self,
        user_id: &str,
        now: i64,
        stale_before: i64,
    ) -> BillingResult<bool> {
        let inserted = dispatch!(self, pool => {
            sqlx::query(self.sql.claim_customer).bind(user_id).bind(now).execute(pool).await?.rows_affected()
        });
        if inserted > 0 {
            return Ok(true);
        }
        let taken = dispatch!(self, pool => {
            sqlx::query(self.sql.take_over_customer_claim)
                .bind(now)
                .bind(user_id)
                .bind(stale_before)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(taken > 0)
    }

    pub async fn release_customer_claim(&self, user_id: &str) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.release_customer_claim).bind(user_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Remembers a checkout session this package created, so the webhook can
    /// trust its `client_reference_id`.
    pub async fn record_checkout_session(
        &self,
        session_id: &str,
        user_id: &str,
    ) -> BillingResult<()> {
        dispatch!(self, pool => {
            sqlx::query(self.sql.insert_checkout_session)
                .bind(session_id)
                .bind(user_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
