//! One batch on MySQL/MariaDB: one transaction of two round trips, whatever
//! the batch's size. The batch's users, then its own subscriptions, are
//! locked and read up front (in id order, so concurrent batches cannot
//! deadlock on them); the users' other subscriptions and the ledger rows of
//! its events are read, all in one multi-statement. Rust then applies the
//! events one by one
//! in memory with the same rules as everywhere else (`plan_event`,
//! `events::project`), and what changed is written back (the subscriptions,
//! the users' projections, the ledger rows) together with the commit, as
//! one multi-statement.
//!
//! An event the database refuses fails the batch's writes; the writer then
//! tries each event alone (see `server_writer`), so it fails by itself.

use std::collections::HashMap;

use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::{Executor, Row};

use super::dialect::{
    mysql_begin_and_read, mysql_in_list, mysql_insert_events, mysql_int, mysql_optional_text,
    mysql_text, mysql_update_projections, mysql_upsert_subscriptions, mysql_write_and_commit,
    MYSQL, MYSQL_ROLLBACK,
};
use super::event_write::{
    plan_event, EventPlan, LedgerRecord, SubscriptionEventWrite, WriteOutcome,
};
use super::server_writer::{is_transient, BatchFailure};
use super::EventState;
use crate::error::{BillingError, BillingResult};
use crate::events::{project, Projection, StoredSubscription};

/// A subscription row as the batch sees it.
#[derive(Debug, Clone)]
struct SubscriptionRow {
    user_id: Option<String>,
    last_event_created: Option<i64>,
    stored: StoredSubscription,
}

/// A subscription row the batch writes (the columns of the upsert).
struct SubscriptionUpsert<'a> {
    write: &'a SubscriptionEventWrite,
    user_id: String,
    items: String,
}

/// A ledger row the batch writes.
struct LedgerInsert<'a> {
    write: &'a SubscriptionEventWrite,
    state: EventState,
    detail: Option<&'static str>,
    notify_user_id: Option<String>,
    lease_until: i64,
}

/// What the batch read, and what it changes, in memory.
#[derive(Default)]
struct BatchState<'a> {
    /// Customer id -> the user linked to it.
    owners: HashMap<String, String>,
    /// User id -> (the stored projection, the projection now).
    projections: HashMap<String, (Projection, Projection)>,
    subscriptions: HashMap<String, SubscriptionRow>,
    ledger: HashMap<String, &'static str>,
    upserts: Vec<SubscriptionUpsert<'a>>,
    inserts: Vec<LedgerInsert<'a>>,
}

pub(super) async fn apply(
    connection: &mut MySqlConnection,
    writes: &[&SubscriptionEventWrite],
) -> Result<Vec<BillingResult<WriteOutcome>>, BatchFailure> {
    let result = apply_and_commit(connection, writes).await;
    if result.is_err() {
        // The caller closes the connection whatever happens here.
        let _ = connection.execute(MYSQL_ROLLBACK).await;
    }
    result
}

async fn apply_and_commit(
    connection: &mut MySqlConnection,
    writes: &[&SubscriptionEventWrite],
) -> Result<Vec<BillingResult<WriteOutcome>>, BatchFailure> {
    let mut state = read_state(connection, writes).await?;
    if let Some(before) = writes.iter().find_map(|write| write.prune_before) {
        // A failed statement is rolled back alone by InnoDB; pruning never
        // fails the batch unless the transaction itself is lost.
        let pruned = sqlx::query(MYSQL.prune_events)
            .bind(before)
            .execute(&mut *connection)
            .await;
        if let Err(error) = pruned {
            if is_transient(&error) {
                return Err(error.into());
            }
        }
    }
    let results: Vec<BillingResult<WriteOutcome>> = writes
        .iter()
        .map(|write| apply_event(&mut state, write))
        .collect();
    let statement = mysql_write_and_commit(&write_statements(&state));
    connection
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
        .await?;
    Ok(results)
}

/// Runs a statement of literals in the text protocol and returns its rows.
async fn rows(
    connection: &mut MySqlConnection,
    statement: String,
) -> Result<Vec<MySqlRow>, sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .fetch_all(&mut *connection)
        .await
}

fn text_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut values: Vec<&str> = values.collect();
    values.sort_unstable();
    values.dedup();
    mysql_in_list(&values.into_iter().map(mysql_text).collect::<Vec<_>>())
}

/// Begins the transaction, then locks and reads what the batch's events
/// need, in one round trip.
async fn read_state<'a>(
    connection: &mut MySqlConnection,
    writes: &[&'a SubscriptionEventWrite],
) -> Result<BatchState<'a>, sqlx::Error> {
    let mut state = BatchState::default();
    let statement = mysql_begin_and_read(
        &text_list(writes.iter().map(|w| w.snapshot.customer_id.as_str())),
        &text_list(writes.iter().map(|w| w.snapshot.id.as_str())),
        &text_list(writes.iter().map(|w| w.event_id.as_str())),
    );
    for row in &rows(connection, statement).await? {
        let tag: String = row.try_get(0)?;
        match tag.as_str() {
            "u" => {
                let user_id: String = row.try_get(1)?;
                let customer_id: String = row.try_get(2)?;
                let projection = Projection {
                    subscription_id: row.try_get(3)?,
                    status: row.try_get(4)?,
                    price_id: row.try_get(5)?,
                    current_period_end: row.try_get(6)?,
                    cancel_at_period_end: row.try_get(7)?,
                };
                state.owners.insert(customer_id, user_id.clone());
                state
                    .projections
                    .insert(user_id, (projection.clone(), projection));
            }
            "s" => {
                let id: String = row.try_get(1)?;
                state.subscriptions.insert(
                    id.clone(),
                    SubscriptionRow {
                        user_id: row.try_get(2)?,
                        last_event_created: row.try_get(3)?,
                        stored: StoredSubscription {
                            id,
                            status: row.try_get(4)?,
                            created: row.try_get(5)?,
                            price_id: row.try_get(6)?,
                            current_period_end: row.try_get(7)?,
                            cancel_at_period_end: row.try_get(8)?,
                            cancel_at: row.try_get(9)?,
                        },
                    },
                );
            }
            _ => {
                let id: String = row.try_get(1)?;
                let ledger_state: String = row.try_get(2)?;
                state.ledger.insert(id, ledger_state_name(&ledger_state));
            }
        }
    }
    Ok(state)
}

/// The ledger states as static names (an unknown one counts as held by
/// another delivery, as `plan_event` treats anything but done and ignored).
fn ledger_state_name(state: &str) -> &'static str {
    match state {
        "done" => "done",
        "ignored" => "ignored",
        "notify" => "notify",
        _ => "processing",
    }
}

/// One event, in memory, by the rules every writer follows.
fn apply_event<'a>(
    state: &mut BatchState<'a>,
    write: &'a SubscriptionEventWrite,
) -> BillingResult<WriteOutcome> {
    let snapshot = &write.snapshot;
    let owner = state.owners.get(&snapshot.customer_id).cloned();
    let ledger_state = state.ledger.get(&write.event_id).copied();
    let last = state
        .subscriptions
        .get(&snapshot.id)
        .and_then(|row| row.last_event_created);
    let user_id = match plan_event(write, owner, ledger_state, last) {
        EventPlan::Duplicate => return Ok(WriteOutcome::Duplicate),
        EventPlan::Declined => return Ok(WriteOutcome::Declined),
        EventPlan::RecordStale => {
            record(state, write, &LedgerRecord::stale());
            return Ok(WriteOutcome::Applied { changed_user: None });
        }
        EventPlan::Apply { user_id } => user_id,
    };
    let items = serde_json::to_string(&snapshot.items)
        .map_err(|e| BillingError::Internal(format!("cannot encode items: {e}")))?;
    state.subscriptions.insert(
        snapshot.id.clone(),
        SubscriptionRow {
            user_id: Some(user_id.clone()),
            last_event_created: Some(write.event_created),
            stored: snapshot.stored(),
        },
    );
    // The last write of a subscription in the batch is the one stored.
    state.upserts.retain(|u| u.write.snapshot.id != snapshot.id);
    state.upserts.push(SubscriptionUpsert {
        write,
        user_id: user_id.clone(),
        items,
    });
    let owned: Vec<StoredSubscription> = state
        .subscriptions
        .values()
        .filter(|row| row.user_id.as_deref() == Some(user_id.as_str()))
        .map(|row| row.stored.clone())
        .collect();
    let projection = project(&owned);
    let changed = match state.projections.get_mut(&user_id) {
        Some((_, current)) if *current != projection => {
            *current = projection;
            true
        }
        _ => false,
    };
    let changed_user = changed.then_some(user_id);
    record(
        state,
        write,
        &LedgerRecord::applied(write, changed_user.as_deref()),
    );
    Ok(WriteOutcome::Applied { changed_user })
}

fn record<'a>(
    state: &mut BatchState<'a>,
    write: &'a SubscriptionEventWrite,
    record: &LedgerRecord<'_>,
) {
    state
        .ledger
        .insert(write.event_id.clone(), record.state.as_str());
    state.inserts.push(LedgerInsert {
        write,
        state: record.state,
        detail: record.detail,
        notify_user_id: record.notify_user_id.map(str::to_owned),
        lease_until: record.lease_column(write.received_at),
    });
}

/// The statements that write what the batch changed: three at most.
fn write_statements(state: &BatchState<'_>) -> Vec<String> {
    let mut statements = Vec::with_capacity(3);
    if !state.upserts.is_empty() {
        let rows: Vec<String> = state
            .upserts
            .iter()
            .map(|upsert| {
                let snapshot = &upsert.write.snapshot;
                let main = snapshot.main_item();
                [
                    mysql_text(&snapshot.id),
                    mysql_text(&snapshot.customer_id),
                    mysql_text(&upsert.user_id),
                    mysql_text(&snapshot.status),
                    mysql_text(&upsert.items),
                    mysql_optional_text(main.and_then(|i| i.price.as_deref())),
                    mysql_int(main.and_then(|i| i.current_period_end)),
                    mysql_int(Some(i64::from(snapshot.cancel_at_period_end))),
                    mysql_int(snapshot.cancel_at),
                    mysql_int(snapshot.trial_end),
                    mysql_int(Some(snapshot.created)),
                    mysql_int(Some(upsert.write.event_created)),
                    mysql_optional_text(main.and_then(|i| i.product.as_deref())),
                    mysql_int(main.and_then(|i| i.quantity)),
                    mysql_int(snapshot.trial_start),
                    mysql_int(snapshot.ended_at),
                ]
                .join(", ")
            })
            .collect();
        statements.push(mysql_upsert_subscriptions(&rows));
    }
    let changed: Vec<[String; 6]> = state
        .projections
        .iter()
        .filter(|(_, (stored, current))| stored != current)
        .map(|(user, (_, current))| {
            [
                mysql_text(user),
                mysql_optional_text(current.subscription_id.as_deref()),
                mysql_optional_text(current.status.as_deref()),
                mysql_optional_text(current.price_id.as_deref()),
                mysql_int(current.current_period_end),
                mysql_int(Some(i64::from(current.cancel_at_period_end))),
            ]
        })
        .collect();
    if !changed.is_empty() {
        statements.push(mysql_update_projections(&changed));
    }
    if !state.inserts.is_empty() {
        let rows: Vec<String> = state
            .inserts
            .iter()
            .map(|insert| {
                let write = insert.write;
                [
                    mysql_text(&write.event_id),
                    mysql_text(&write.event_type),
                    mysql_int(Some(write.event_created)),
                    mysql_text(insert.state.as_str()),
                    mysql_optional_text(insert.detail),
                    mysql_optional_text(insert.notify_user_id.as_deref()),
                    mysql_int(Some(insert.lease_until)),
                    mysql_int(Some(write.received_at)),
                    mysql_int(Some(write.received_at)),
                ]
                .join(", ")
            })
            .collect();
        statements.push(mysql_insert_events(&rows));
    }
    statements
}
