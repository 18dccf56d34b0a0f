//! Group commit on SQLite: one writer thread per store takes the subscription
//! events that need no Stripe fetch, up to `MAX_BATCH` at a time, and applies
//! them in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint,
//! with one commit (`synchronous = FULL`) for the batch. Batches run
//! synchronously on the connection's raw handle, which the writer keeps while
//! batches keep coming (at most `HOLD_CONNECTION_FOR`): at most one hop to the
//! database per batch instead of one per statement.
//!
//! A delivery is answered only after the commit that holds it. An event that
//! fails inside its savepoint rolls back alone; one that needs Stripe (a
//! same-second tie, an unknown customer, a ledger row held by another
//! delivery) rolls back and is declined to the general path. When the commit
//! itself fails, every event of the batch is retried in a transaction of its
//! own, so only an event that fails alone answers an error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePool;
use tokio::runtime::Handle;

use super::dialect::{WriterSql, SQLITE_WRITER};
use super::event_write::{
    plan_event, same_error, EventPlan, Job, JobIntake, LedgerRecord, SubscriptionEventWrite,
    WriteOutcome, WriteReply, MAX_BATCH,
};
use super::sqlite_raw::{Param, RawConnection, SqliteCallError, StatementCache};
use crate::error::{BillingError, BillingResult};

/// How long the writer keeps the connection while batches keep coming;
/// then reads, checkout sessions and the general path get their turn.
const HOLD_CONNECTION_FOR: Duration = Duration::from_millis(2);
/// Prepared statements are finalized after this long without work, so the
/// pool never holds a connection with statements of ours while idle.
const IDLE_FINALIZE_AFTER: Duration = Duration::from_millis(500);

/// The handle the store keeps; the thread does the work.
pub struct SqliteWriter {
    intake: JobIntake<Sender<Job>>,
    /// Set by `close`: from then on every batch finalizes its statements
    /// before it lets go of the connection, so the pool can close it safely.
    closing: Arc<AtomicBool>,
}

impl SqliteWriter {
    pub fn start(pool: SqlitePool, runtime: Handle) -> BillingResult<Self> {
        let (jobs, receiver) = mpsc::channel();
        let (intake, stopped) = JobIntake::new(jobs);
        let closing = Arc::new(AtomicBool::new(false));
        let thread = WriterThread {
            pool,
            runtime,
            sql: &SQLITE_WRITER,
            cache: StatementCache::default(),
            closing: Arc::clone(&closing),
        };
        std::thread::Builder::new()
            .name("kavach-sqlite-writer".into())
            .spawn(move || {
                thread.run(receiver);
                let _ = stopped.send(true);
            })
            .map_err(|e| BillingError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { intake, closing })
    }

    /// Queues an event; `reply` is called once, after the commit that holds it
    /// (or with `closed` when the writer no longer takes work).
    pub fn submit(&self, write: SubscriptionEventWrite, reply: WriteReply) {
        self.intake.submit(write, reply);
    }

    /// Stops taking work, then waits (at most `CLOSE_DRAIN_TIMEOUT`) until
    /// what was queued is committed and answered and the thread has let go of
    /// the connection.
    pub async fn close(&self) {
        self.closing.store(true, AtomicOrdering::SeqCst);
        self.intake.close().await;
    }
}

struct WriterThread {
    pool: SqlitePool,
    runtime: Handle,
    sql: &'static WriterSql,
    cache: StatementCache,
    closing: Arc<AtomicBool>,
}

/// How a batch's transaction ended.
enum BatchEnd {
    /// Committed: one result per event, in order.
    Committed(Vec<BillingResult<WriteOutcome>>),
    /// The transaction could not start: nothing was tried.
    NotStarted(BillingError),
    /// The transaction was lost (the commit failed, or SQLite rolled it back
    /// after an error): nothing of the batch is stored.
    Lost(BillingError),
}

/// Why one event's savepoint did not complete.
enum EventFailure {
    /// The event failed alone; its savepoint was rolled back.
    Event(SqliteCallError),
    /// The whole transaction is gone.
    Transaction(SqliteCallError),
}

fn database_error(error: SqliteCallError) -> BillingError {
    BillingError::Database(error.to_string())
}

impl WriterThread {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            let first = match jobs.recv_timeout(IDLE_FINALIZE_AFTER) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.release_statements();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // A panic answers the batch's events through `Job::drop` and
            // rolls back through `RollbackGuard`; the thread goes on.
            let _ = catch_unwind(AssertUnwindSafe(|| self.session(first, &jobs)));
        }
        self.release_statements();
    }

    /// Holds the connection for as long as batches keep coming, at most
    /// `HOLD_CONNECTION_FOR`: the hops to take and give back the connection
    /// are paid once per session, not once per batch.
    fn session(&mut self, first: Job, jobs: &Receiver<Job>) {
        let sql = self.sql;
        let closing = Arc::clone(&self.closing);
        let mut first = Some(first);
        let held = self.with_connection(|connection| {
            let release_at = Instant::now() + HOLD_CONNECTION_FOR;
            loop {
                let batch = next_batch(first.take(), jobs);
                if batch.is_empty() {
                    break;
                }
                write_batch(connection, sql, batch);
                if Instant::now() >= release_at {
                    break;
                }
            }
            if closing.load(AtomicOrdering::SeqCst) {
                // `close` may stop waiting and close the pool after this.
                connection.finalize_statements();
            }
        });
        if let (Err(error), Some(job)) = (held, first) {
            job.answer(Err(error));
        }
    }

    /// Finalizes the cached statements under the connection's lock.
    fn release_statements(&mut self) {
        if !self.cache.is_empty() {
            let _ = self.with_connection(|connection| connection.finalize_statements());
        }
    }

    /// Runs `work` with the pool's connection locked for this thread.
    fn with_connection<T>(
        &mut self,
        work: impl FnOnce(&mut RawConnection<'_>) -> T,
    ) -> BillingResult<T> {
        let pool = self.pool.clone();
        let cache = &mut self.cache;
        self.runtime.block_on(async {
            let mut connection = pool.acquire().await?;
            let mut locked = connection.lock_handle().await?;
            // SAFETY: `locked` gives this thread the connection until it drops,
            // after `work` returns.
            let mut raw = unsafe { RawConnection::new(locked.as_raw_handle(), cache) };
            Ok(work(&mut raw))
        })
    }
}

/// `first` (when given) and whatever else is queued, up to `MAX_BATCH`.
fn next_batch(first: Option<Job>, jobs: &Receiver<Job>) -> Vec<Job> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    batch.extend(first);
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Applies a batch and answers its events; when its transaction is lost,
/// each event is retried in a transaction of its own.
fn write_batch(connection: &mut RawConnection<'_>, sql: &'static WriterSql, batch: Vec<Job>) {
    match apply_batch(connection, sql, &batch) {
        BatchEnd::Committed(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                job.answer(result);
            }
        }
        BatchEnd::NotStarted(error) => {
            for job in batch {
                job.answer(Err(same_error(&error)));
            }
        }
        BatchEnd::Lost(error) if batch.len() == 1 => {
            for job in batch {
                job.answer(Err(same_error(&error)));
            }
        }
        BatchEnd::Lost(_) => {
            // Only an event that fails by itself answers 5xx.
            for job in batch {
                write_batch(connection, sql, vec![job]);
            }
        }
    }
}

/// Rolls back a transaction left open by an early return or a panic.
struct RollbackGuard<'a, 'c> {
    connection: &'a mut RawConnection<'c>,
    sql: &'static WriterSql,
}

impl Drop for RollbackGuard<'_, '_> {
    fn drop(&mut self) {
        if !self.connection.in_autocommit() {
            let _ = self.connection.execute(self.sql.rollback, &[]);
        }
    }
}

fn apply_batch(
    connection: &mut RawConnection<'_>,
    sql: &'static WriterSql,
    batch: &[Job],
) -> BatchEnd {
    if !connection.in_autocommit() {
        // Not expected: `RollbackGuard` closes every transaction of ours and
        // sqlx rolls back its own before it releases the connection.
        let _ = connection.execute(sql.rollback, &[]);
    }
    if let Err(error) = connection.execute(sql.begin, &[]) {
        return BatchEnd::NotStarted(database_error(error));
    }
    let guard = RollbackGuard { connection, sql };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match apply_in_savepoint(guard.connection, sql, &job.write) {
            Ok(outcome) => results.push(Ok(outcome)),
            Err(EventFailure::Event(error)) => results.push(Err(database_error(error))),
            Err(EventFailure::Transaction(error)) => return BatchEnd::Lost(database_error(error)),
        }
    }
    match guard.connection.execute(sql.commit, &[]) {
        Ok(()) => BatchEnd::Committed(results),
        Err(error) => BatchEnd::Lost(database_error(error)),
    }
}

fn apply_in_savepoint(
    connection: &mut RawConnection<'_>,
    sql: &'static WriterSql,
    write: &SubscriptionEventWrite,
) -> Result<WriteOutcome, EventFailure> {
    if connection.in_autocommit() {
        // SAVEPOINT would silently open a new transaction.
        return Err(EventFailure::Transaction(SqliteCallError {
            code: libsqlite3_sys::SQLITE_ABORT,
            message: "the transaction was rolled back".into(),
        }));
    }
    if let Some(before) = write.prune_before {
        let _ = connection.execute(sql.prune_events, &[Param::Int(before)]);
    }
    connection
        .execute(sql.savepoint, &[])
        .map_err(EventFailure::Transaction)?;
    let result = apply_event(connection, sql, write);
    // `Duplicate` and `Declined` return before writing anything.
    let keep = result.is_ok();
    if connection.in_autocommit() {
        // SQLite rolled the whole transaction back (I/O error, disk full).
        return Err(EventFailure::Transaction(match result {
            Err(error) => error,
            Ok(_) => SqliteCallError {
                code: libsqlite3_sys::SQLITE_ABORT,
                message: "the transaction was rolled back".into(),
            },
        }));
    }
    let undo = if keep {
        Ok(())
    } else {
        connection.execute(sql.rollback_to_savepoint, &[])
    };
    undo.and_then(|()| connection.execute(sql.release_savepoint, &[]))
        .map_err(EventFailure::Transaction)?;
    result.map_err(EventFailure::Event)
}

/// The event's statements, inside its savepoint (rolled back on an error).
fn apply_event(
    connection: &mut RawConnection<'_>,
    sql: &'static WriterSql,
    write: &SubscriptionEventWrite,
) -> Result<WriteOutcome, SqliteCallError> {
    let snapshot = &write.snapshot;
    let mut context = None;
    connection.run(
        sql.read_event_context,
        &[
            Param::Text(&snapshot.customer_id),
            Param::Text(&write.event_id),
            Param::Text(&snapshot.id),
        ],
        |row| context = Some((row.text(0), row.text(1), row.int(2))),
    )?;
    let (owner, ledger_state, last_event_created) = context.unwrap_or((None, None, None));
    let user_id = match plan_event(write, owner, ledger_state.as_deref(), last_event_created) {
        EventPlan::Duplicate => return Ok(WriteOutcome::Duplicate),
        EventPlan::Declined => return Ok(WriteOutcome::Declined),
        EventPlan::RecordStale => {
            record_event(connection, sql, write, &LedgerRecord::stale())?;
            return Ok(WriteOutcome::Applied { changed_user: None });
        }
        EventPlan::Apply { user_id } => user_id,
    };
    let main = snapshot.main_item();
    let items = serde_json::to_string(&snapshot.items).map_err(|e| SqliteCallError {
        code: libsqlite3_sys::SQLITE_MISUSE,
        message: format!("cannot encode items: {e}"),
    })?;
    connection.execute(
        sql.upsert_subscription,
        &[
            Param::Text(&snapshot.id),
            Param::Text(&snapshot.customer_id),
            Param::Text(&user_id),
            Param::Text(&snapshot.status),
            Param::Text(&items),
            main.and_then(|i| i.price.as_deref()).into(),
            main.and_then(|i| i.current_period_end).into(),
            Param::Int(i64::from(snapshot.cancel_at_period_end)),
            snapshot.cancel_at.into(),
            snapshot.trial_end.into(),
            Param::Int(snapshot.created),
            Param::Int(write.event_created),
            main.and_then(|i| i.product.as_deref()).into(),
            main.and_then(|i| i.quantity).into(),
            snapshot.trial_start.into(),
            snapshot.ended_at.into(),
        ],
    )?;
    let changed = connection.run(sql.write_projection, &[Param::Text(&user_id)], |_| {})? > 0;
    let changed_user = changed.then_some(user_id);
    record_event(
        connection,
        sql,
        write,
        &LedgerRecord::applied(write, changed_user.as_deref()),
    )?;
    Ok(WriteOutcome::Applied { changed_user })
}

fn record_event(
    connection: &mut RawConnection<'_>,
    sql: &'static WriterSql,
    write: &SubscriptionEventWrite,
    record: &LedgerRecord<'_>,
) -> Result<(), SqliteCallError> {
    connection.execute(
        sql.record_event,
        &[
            Param::Text(&write.event_id),
            Param::Text(&write.event_type),
            Param::Int(write.event_created),
            Param::Text(record.state.as_str()),
            record.detail.into(),
            record.notify_user_id.into(),
            Param::Int(record.lease_column(write.received_at)),
            Param::Int(write.received_at),
        ],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::mpsc as std_mpsc;

    use proptest::prelude::*;

    use super::*;
    use crate::events::{
        decide, project, Ordering, StoredSubscription, SubscriptionItem, SubscriptionSnapshot,
    };
    use crate::store::subscriptions::projection_of;
    use crate::store::{DatabaseTarget, Store};

    const STATUSES: [&str; 5] = [
        "active",
        "trialing",
        "past_due",
        "canceled",
        "incomplete_expired",
    ];

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn store(runtime: &tokio::runtime::Runtime) -> Store {
        runtime.block_on(async {
            let store = Store::connect(&DatabaseTarget::SqliteMemory)
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            store
                .upsert_user("u1", "u1@example.com", None)
                .await
                .expect("user");
            assert!(store.link_customer("u1", "cus_1").await.expect("link"));
            store
        })
    }

    #[derive(Debug, Clone)]
    struct Step {
        subscription: usize,
        status: usize,
        created: i64,
        event_created: i64,
        cancel_at_period_end: bool,
        cancel_at: Option<i64>,
        period_end: Option<i64>,
    }

    impl Step {
        /// An `active` subscription's first event.
        fn first(period_end: Option<i64>) -> Self {
            Self {
                subscription: 0,
                status: 0,
                created: 1,
                event_created: 10,
                cancel_at_period_end: false,
                cancel_at: None,
                period_end,
            }
        }
    }

    fn write(index: usize, step: &Step) -> SubscriptionEventWrite {
        SubscriptionEventWrite {
            event_id: format!("evt_{index}"),
            event_type: "customer.subscription.updated".into(),
            event_created: step.event_created,
            snapshot: SubscriptionSnapshot {
                id: format!("sub_{}", step.subscription),
                customer_id: "cus_1".into(),
                status: STATUSES[step.status].into(),
                items: vec![SubscriptionItem {
                    id: None,
                    price: Some(format!("price_{index}")),
                    product: Some("prod".into()),
                    quantity: Some(1),
                    current_period_end: step.period_end,
                }],
                cancel_at_period_end: step.cancel_at_period_end,
                cancel_at: step.cancel_at,
                trial_start: None,
                trial_end: None,
                ended_at: None,
                created: step.created,
                metadata_user_id: None,
            },
            notify_lease_until: None,
            received_at: 1,
            prune_before: None,
        }
    }

    /// Submits every write before the writer can start, so they share batches.
    fn submit_all(
        store: &Store,
        writes: Vec<SubscriptionEventWrite>,
    ) -> Vec<BillingResult<WriteOutcome>> {
        let (sender, receiver) = std_mpsc::channel();
        let count = writes.len();
        for (index, write) in writes.into_iter().enumerate() {
            let sender = sender.clone();
            store.batch_writer().submit(
                write,
                Box::new(move |result| {
                    let _ = sender.send((index, result));
                }),
            );
        }
        let mut results: Vec<_> = (0..count)
            .map(|_| receiver.recv().expect("answer"))
            .collect();
        results.sort_by_key(|(index, _)| *index);
        results.into_iter().map(|(_, result)| result).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the order and ties, the writer applies what `decide`
        /// allows and its one-statement projection is `project()`'s.
        #[test]
        fn the_writer_follows_the_ordering_and_projection_rules(steps in prop::collection::vec(
            (0usize..3, 0usize..5, 0i64..3, 0i64..6, any::<bool>(), prop::option::of(0i64..3), prop::option::of(0i64..3))
                .prop_map(|(subscription, status, created, event_created, cancel_at_period_end, cancel_at, period_end)| Step {
                    subscription, status, created, event_created, cancel_at_period_end, cancel_at, period_end,
                }),
            1..12,
        )) {
            let runtime = runtime();
            let store = store(&runtime);
            let writes: Vec<_> = steps.iter().enumerate().map(|(i, step)| write(i, step)).collect();
            let results = submit_all(&store, writes.clone());

            let mut model: HashMap<String, (i64, StoredSubscription)> = HashMap::new();
            for (write, result) in writes.iter().zip(&results) {
                let snapshot = &write.snapshot;
                let last = model.get(&snapshot.id).map(|(last, _)| *last);
                match decide(last, write.event_created, false) {
                    Ordering::Tie => prop_assert_eq!(result.as_ref().ok(), Some(&WriteOutcome::Declined)),
                    Ordering::Stale => prop_assert_eq!(result.as_ref().ok(), Some(&WriteOutcome::Applied { changed_user: None })),
                    Ordering::Apply => {
                        prop_assert!(matches!(result, Ok(WriteOutcome::Applied { .. })), "{:?}", result);
                        model.insert(snapshot.id.clone(), (write.event_created, snapshot.stored()));
                    }
                }
            }
            let stored: Vec<StoredSubscription> = model.into_values().map(|(_, s)| s).collect();
            let user = runtime.block_on(store.find_user("u1")).expect("read").expect("user");
            prop_assert_eq!(projection_of(&user), project(&stored));
            runtime.block_on(store.close());
        }
    }

    #[test]
    fn a_changed_projection_is_reported_and_an_unchanged_one_is_not() {
        let runtime = runtime();
        let store = store(&runtime);
        let step = Step::first(Some(5));
        let mut same = write(1, &step);
        same.event_created = 11;
        same.snapshot.items[0].price = Some("price_0".into());
        let results = submit_all(&store, vec![write(0, &step), same]);
        assert_eq!(
            results.into_iter().map(Result::ok).collect::<Vec<_>>(),
            vec![
                Some(WriteOutcome::Applied {
                    changed_user: Some("u1".into())
                }),
                Some(WriteOutcome::Applied { changed_user: None }),
            ]
        );
        runtime.block_on(store.close());
    }

    #[test]
    fn unknown_customers_and_handled_events_write_nothing() {
        let runtime = runtime();
        let store = store(&runtime);
        let step = Step::first(None);
        let mut stranger = write(0, &step);
        stranger.snapshot.customer_id = "cus_unknown".into();
        let first = write(1, &step);
        let results = submit_all(&store, vec![stranger, first.clone(), first]);
        assert_eq!(
            results.into_iter().map(Result::ok).collect::<Vec<_>>(),
            vec![
                Some(WriteOutcome::Declined),
                Some(WriteOutcome::Applied {
                    changed_user: Some("u1".into())
                }),
                Some(WriteOutcome::Duplicate),
            ]
        );
        runtime.block_on(store.close());
        let after_close = submit_all(&store, vec![write(2, &step)]);
        assert!(matches!(after_close[0], Err(BillingError::Closed)));
    }
}
