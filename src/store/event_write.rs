//! What the batch writers (`sqlite_writer`, `server_writer`) take and answer:
//! a subscription event that needs no Stripe fetch, and what was done with it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::EventState;
use crate::error::{BillingError, BillingResult};
use crate::events::{decide, Ordering, SubscriptionSnapshot};

/// Most events in one transaction (Postgres caches 64 subtransactions per
/// backend; past that each savepoint costs a lookup in `pg_subtrans`).
pub const MAX_BATCH: usize = 64;
/// How long `close` waits for queued work to be committed and answered.
pub const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The ledger's `detail` for an event older than the stored state.
pub const STALE_DETAIL: &str = "older than the stored state";

/// A subscription event, verified and read, for a writer.
#[derive(Debug, Clone)]
pub struct SubscriptionEventWrite {
    pub event_id: String,
    pub event_type: String,
    pub event_created: i64,
    /// The subscription as the event shows it (`canceled` for a deletion).
    pub snapshot: SubscriptionSnapshot,
    /// Set when the app listens for changes: a changed projection is then
    /// recorded as owed to the user, under a lease until this time.
    pub notify_lease_until: Option<i64>,
    /// Unix seconds.
    pub received_at: i64,
    /// When set, handled ledger rows received before this time are deleted
    /// first, in the same transaction (`eventRetentionDays`); a failure there
    /// does not fail the event.
    pub prune_before: Option<i64>,
}

/// What a writer did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Committed. `changed_user` is the user whose projection changed.
    Applied { changed_user: Option<String> },
    /// Handled before (the ledger says done or ignored): nothing written.
    Duplicate,
    /// Needs the general path (a Stripe fetch, or another delivery's lease):
    /// nothing written.
    Declined,
}

pub type WriteReply = Box<dyn FnOnce(BillingResult<WriteOutcome>) + Send>;

/// A queued event and its reply, answered exactly once.
pub(super) struct Job {
    pub write: SubscriptionEventWrite,
    reply: Option<WriteReply>,
}

impl Job {
    pub fn new(write: SubscriptionEventWrite, reply: WriteReply) -> Self {
        Self {
            write,
            reply: Some(reply),
        }
    }

    pub fn answer(mut self, result: BillingResult<WriteOutcome>) {
        if let Some(reply) = self.reply.take() {
            reply(result);
        }
    }
}

impl Drop for Job {
    /// Every submitted event is answered, even when a panic unwinds through
    /// the batch that held it or the writer stops first.
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply(Err(BillingError::Internal(
                "the batch writer stopped before this event was written".into(),
            )));
        }
    }
}

/// The channel a writer takes its jobs from, on either side of the
/// thread/task divide (SQLite's writer is a thread, the servers' a task).
pub(super) trait JobSender: Send {
    /// Hands the job over; gives it back when the writer has stopped.
    fn send_job(&self, job: Job) -> Option<Job>;
}

impl JobSender for std::sync::mpsc::Sender<Job> {
    fn send_job(&self, job: Job) -> Option<Job> {
        self.send(job).err().map(|error| error.0)
    }
}

impl JobSender for tokio::sync::mpsc::UnboundedSender<Job> {
    fn send_job(&self, job: Job) -> Option<Job> {
        self.send(job).err().map(|error| error.0)
    }
}

/// A writer's front door: takes jobs until closed, then waits for the
/// writer to drain them. Both writers keep one.
pub(super) struct JobIntake<S> {
    jobs: Mutex<Option<S>>,
    stopped: watch::Receiver<bool>,
}

impl<S: JobSender> JobIntake<S> {
    /// The intake, and what the writer sends `true` on once it has stopped.
    pub fn new(sender: S) -> (Self, watch::Sender<bool>) {
        let (stopped_tx, stopped) = watch::channel(false);
        let intake = Self {
            jobs: Mutex::new(Some(sender)),
            stopped,
        };
        (intake, stopped_tx)
    }

    /// Queues an event; `reply` is called once, after the commit that holds
    /// it (or with `closed` when the writer no longer takes work).
    pub fn submit(&self, write: SubscriptionEventWrite, reply: WriteReply) {
        let job = Job::new(write, reply);
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let refused = match jobs.as_ref() {
            Some(sender) => sender.send_job(job),
            None => Some(job),
        };
        if let Some(job) = refused {
            job.answer(Err(BillingError::Closed));
        }
    }

    /// Stops taking work, then waits (at most `CLOSE_DRAIN_TIMEOUT`) until
    /// the writer has answered what was queued and stopped.
    pub async fn close(&self) {
        // Dropping the sender lets the writer drain the queue, then stop.
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut stopped = self.stopped.clone();
        let _ = tokio::time::timeout(CLOSE_DRAIN_TIMEOUT, stopped.wait_for(|done| *done)).await;
    }
}

/// The same failure, for each event of a batch.
pub(super) fn same_error(error: &BillingError) -> BillingError {
    match error {
        BillingError::Closed => BillingError::Closed,
        BillingError::Database(message) => BillingError::Database(message.clone()),
        other => BillingError::Database(other.to_string()),
    }
}

/// What the stored state says to do with an event, before anything is
/// written: the rule every writer follows (Postgres's batch function states
/// it in SQL, checked against this by the differential test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EventPlan {
    Duplicate,
    Declined,
    /// Older than the stored state: record it as handled, change nothing.
    RecordStale,
    /// Apply it for this user.
    Apply {
        user_id: String,
    },
}

/// `owner` is the user linked to the event's customer, `ledger_state` the
/// event's row in the ledger, `last_event_created` the stored subscription's.
pub(super) fn plan_event(
    write: &SubscriptionEventWrite,
    owner: Option<String>,
    ledger_state: Option<&str>,
    last_event_created: Option<i64>,
) -> EventPlan {
    match ledger_state {
        None => {}
        Some("done" | "ignored") => return EventPlan::Duplicate,
        // `processing` or `notify`: another delivery holds it.
        Some(_) => return EventPlan::Declined,
    }
    let Some(user_id) = owner else {
        // An unknown customer: only Stripe can say whose it is.
        return EventPlan::Declined;
    };
    match decide(last_event_created, write.event_created, false) {
        // Same second: only Stripe knows which is newer.
        Ordering::Tie => EventPlan::Declined,
        Ordering::Stale => EventPlan::RecordStale,
        Ordering::Apply => EventPlan::Apply { user_id },
    }
}

/// The ledger row an event is recorded with, once, in its final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LedgerRecord<'a> {
    pub state: EventState,
    pub detail: Option<&'static str>,
    pub notify_user_id: Option<&'a str>,
    /// The lease of an owed notification; a handled row's lease column holds
    /// its arrival time.
    pub notify_lease_until: Option<i64>,
}

impl<'a> LedgerRecord<'a> {
    pub fn stale() -> Self {
        Self {
            state: EventState::Done,
            detail: Some(STALE_DETAIL),
            notify_user_id: None,
            notify_lease_until: None,
        }
    }

    /// An applied event: `notify` while the app is owed a notification.
    pub fn applied(write: &SubscriptionEventWrite, changed_user: Option<&'a str>) -> Self {
        match (changed_user, write.notify_lease_until) {
            (Some(user), Some(lease_until)) => Self {
                state: EventState::Notify,
                detail: None,
                notify_user_id: Some(user),
                notify_lease_until: Some(lease_until),
            },
            _ => Self {
                state: EventState::Done,
                detail: None,
                notify_user_id: None,
                notify_lease_until: None,
            },
        }
    }

    pub fn lease_column(&self, received_at: i64) -> i64 {
        self.notify_lease_until.unwrap_or(received_at)
    }
}
