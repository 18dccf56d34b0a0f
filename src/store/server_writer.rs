//! Group commit on Postgres and MySQL: one writer task per store takes the
//! subscription events that need no Stripe fetch, up to `MAX_BATCH` at a
//! time, and applies each batch in one transaction. On Postgres a batch is
//! one round trip (the `kavach_stripe_apply_events` function, each event in
//! its own subtransaction, see `postgres_batch`); on MySQL two (the events
//! applied in memory between one read and one write, see `mysql_batch`).
//!
//! A delivery is answered only after the commit that holds it. A batch that
//! fails on a deadlock, a serialization failure or a lost connection is
//! retried (the ledger makes a retry of a batch that did commit a no-op), a
//! bounded number of times; then, as for any other batch failure, each event
//! is tried alone, so only an event that fails by itself answers an error.

use std::time::Duration;

use sqlx::mysql::{MySql, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::event_write::{
    same_error, Job, JobIntake, SubscriptionEventWrite, WriteReply, MAX_BATCH,
};
use super::{mysql_batch, postgres_batch};
use crate::error::BillingError;

/// Attempts of one batch when it fails on something transient.
const BATCH_ATTEMPTS: u32 = 3;
/// The writer gives its connection back to the pool after this long idle.
const IDLE_RELEASE_AFTER: Duration = Duration::from_millis(500);

/// The database a server writer writes to.
#[derive(Clone)]
pub enum ServerDatabase {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// The connection the writer keeps while batches keep coming.
enum HeldConnection {
    Postgres(PoolConnection<Postgres>),
    MySql(PoolConnection<MySql>),
}

/// Why a batch did not commit.
#[derive(Debug)]
pub(super) struct BatchFailure {
    pub error: sqlx::Error,
    /// A deadlock, serialization failure, cancellation or lost connection:
    /// the same batch may well commit when tried again.
    pub transient: bool,
}

impl From<sqlx::Error> for BatchFailure {
    fn from(error: sqlx::Error) -> Self {
        let transient = is_transient(&error);
        Self { error, transient }
    }
}

/// What retrying the same batch can fix: Postgres's 40001/40P01
/// (serialization, deadlock), 57xxx (cancelled, terminated); MySQL's 1213
/// (deadlock), 1317/1927 (interrupted, connection killed); and a connection
/// that broke. A lock wait that timed out (Postgres 55P03, MySQL 1205) is not:
/// a row is held elsewhere for long, so the batch is split at once and only
/// the events that need that row wait for it again.
pub(super) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // MySQL reports its errors' SQLSTATE; a lock wait timeout is HY000.
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number());
            (code.starts_with("40") || code.starts_with("57"))
                || matches!(number, Some(1213 | 1317 | 1927))
        }
        _ => false,
    }
}

/// The handle the store keeps; the task does the work.
pub struct ServerWriter {
    intake: JobIntake<UnboundedSender<Job>>,
}

impl ServerWriter {
    pub fn start(database: ServerDatabase, runtime: &Handle) -> Self {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let (intake, stopped) = JobIntake::new(jobs);
        runtime.spawn(async move {
            run(database, receiver).await;
            let _ = stopped.send(true);
        });
        Self { intake }
    }

    /// Queues an event; `reply` is called once, after the commit that holds it
    /// (or with `closed` when the writer no longer takes work).
    pub fn submit(&self, write: SubscriptionEventWrite, reply: WriteReply) {
        self.intake.submit(write, reply);
    }

    /// Stops taking work, then waits (at most `CLOSE_DRAIN_TIMEOUT`) until
    /// what was queued is committed and answered.
    pub async fn close(&self) {
        self.intake.close().await;
    }
}

/// One batch at a time: each is a fixed handful of round trips, and events of
/// one subscription then apply in the order they arrived (two batches in
/// flight would race for the same rows).
async fn run(database: ServerDatabase, mut jobs: UnboundedReceiver<Job>) {
    let mut held: Option<HeldConnection> = None;
    loop {
        let first = if held.is_some() {
            match tokio::time::timeout(IDLE_RELEASE_AFTER, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    held = None;
                    continue;
                }
            }
        } else {
            match jobs.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Each batch on a task of its own: a panic there answers its events
        // (through `Job::drop`) and loses the connection, not the writer.
        let database = database.clone();
        let taken = held.take();
        held = tokio::spawn(async move {
            let mut held = taken;
            write_batch(&database, &mut held, batch).await;
            held
        })
        .await
        .unwrap_or(None);
    }
}

/// Applies a batch and answers its events: retried while it fails on
/// something transient, then split event by event.
async fn write_batch(
    database: &ServerDatabase,
    held: &mut Option<HeldConnection>,
    batch: Vec<Job>,
) {
    let mut last_error = None;
    for attempt in 1..=BATCH_ATTEMPTS {
        let connection = match connection(database, held).await {
            Ok(connection) => connection,
            Err(error) => {
                // No connection: the database is unreachable for everyone.
                let error = BillingError::from(error);
                for job in batch {
                    job.answer(Err(same_error(&error)));
                }
                return;
            }
        };
        let writes: Vec<&SubscriptionEventWrite> = batch.iter().map(|job| &job.write).collect();
        let result = match connection {
            HeldConnection::Postgres(conn) => postgres_batch::apply(conn, &writes).await,
            HeldConnection::MySql(conn) => mysql_batch::apply(conn, &writes).await,
        };
        match result {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    job.answer(result);
                }
                return;
            }
            Err(failure) => {
                // The connection may be broken or mid-transaction: never reuse it.
                if let Some(connection) = held.take() {
                    close_connection(connection).await;
                }
                let transient = failure.transient;
                last_error = Some(failure.error);
                if !transient {
                    break;
                }
                if attempt < BATCH_ATTEMPTS {
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }
    let error = BillingError::from(
        last_error.unwrap_or_else(|| sqlx::Error::Protocol("the batch was not tried".into())),
    );
    if batch.len() == 1 {
        for job in batch {
            job.answer(Err(same_error(&error)));
        }
        return;
    }
    for job in batch {
        Box::pin(write_batch(database, held, vec![job])).await;
    }
}

/// 5-10 ms, then 10-20 ms: long enough for the other side of a deadlock to
/// commit, short against Stripe's delivery timeout.
fn backoff(attempt: u32) -> Duration {
    let base = 5u64 << (attempt - 1).min(4);
    let jitter = u64::from(std::process::id() ^ chrono::Utc::now().timestamp_subsec_nanos()) % base;
    Duration::from_millis(base + jitter)
}

async fn connection<'a>(
    database: &ServerDatabase,
    held: &'a mut Option<HeldConnection>,
) -> Result<&'a mut HeldConnection, sqlx::Error> {
    if held.is_none() {
        *held = Some(match database {
            ServerDatabase::Postgres(pool) => HeldConnection::Postgres(pool.acquire().await?),
            ServerDatabase::MySql(pool) => HeldConnection::MySql(pool.acquire().await?),
        });
    }
    held.as_mut()
        .ok_or_else(|| sqlx::Error::Protocol("no connection".into()))
}

/// Closes a connection that failed instead of returning it to the pool.
async fn close_connection(connection: HeldConnection) {
    use sqlx::Connection;
    let close = async {
        match connection {
            HeldConnection::Postgres(conn) => conn.detach().close().await,
            HeldConnection::MySql(conn) => conn.detach().close().await,
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
}
