//! One batch on Postgres: one statement, one round trip. The batch goes to
//! `kavach_stripe_apply_events` (schema version 2, see `dialect`) as a JSON
//! document, in the simple query protocol: no prepared statement, no session
//! state, so it works the same through a pooler in transaction mode. The
//! statement is its own transaction; when it returns, the batch is committed.

use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::dialect::postgres_apply_events_call;
use super::event_write::{SubscriptionEventWrite, WriteOutcome};
use super::server_writer::BatchFailure;
use crate::error::{BillingError, BillingResult};

/// One element of the batch document; the field names are the function's.
#[derive(Serialize)]
struct BatchEvent<'a> {
    n: usize,
    event_id: &'a str,
    event_type: &'a str,
    event_created: i64,
    subscription_id: &'a str,
    customer_id: &'a str,
    status: &'a str,
    items: String,
    price_id: Option<&'a str>,
    current_period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    trial_end: Option<i64>,
    created: i64,
    product_id: Option<&'a str>,
    quantity: Option<i64>,
    trial_start: Option<i64>,
    ended_at: Option<i64>,
    notify_lease_until: Option<i64>,
    received_at: i64,
}

/// The batch as JSON without a `$` anywhere: `$` only occurs inside JSON
/// strings, where `\u0024` means the same, so the dollar-quoted literal it is
/// sent in cannot be closed by anything an event carries.
pub(super) fn batch_document(writes: &[&SubscriptionEventWrite]) -> Result<String, String> {
    let events = writes
        .iter()
        .enumerate()
        .map(|(n, write)| {
            let snapshot = &write.snapshot;
            let main = snapshot.main_item();
            Ok(BatchEvent {
                n,
                event_id: &write.event_id,
                event_type: &write.event_type,
                event_created: write.event_created,
                subscription_id: &snapshot.id,
                customer_id: &snapshot.customer_id,
                status: &snapshot.status,
                items: serde_json::to_string(&snapshot.items)
                    .map_err(|e| format!("cannot encode items: {e}"))?,
                price_id: main.and_then(|i| i.price.as_deref()),
                current_period_end: main.and_then(|i| i.current_period_end),
                cancel_at_period_end: snapshot.cancel_at_period_end,
                cancel_at: snapshot.cancel_at,
                trial_end: snapshot.trial_end,
                created: snapshot.created,
                product_id: main.and_then(|i| i.product.as_deref()),
                quantity: main.and_then(|i| i.quantity),
                trial_start: snapshot.trial_start,
                ended_at: snapshot.ended_at,
                notify_lease_until: write.notify_lease_until,
                received_at: write.received_at,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let json = serde_json::to_string(&events).map_err(|e| format!("cannot encode a batch: {e}"))?;
    Ok(json.replace('$', "\\u0024"))
}

pub(super) async fn apply(
    connection: &mut PgConnection,
    writes: &[&SubscriptionEventWrite],
) -> Result<Vec<BillingResult<WriteOutcome>>, BatchFailure> {
    let document = batch_document(writes).map_err(|message| BatchFailure {
        error: sqlx::Error::Protocol(message),
        transient: false,
    })?;
    let prune_before = writes.iter().find_map(|write| write.prune_before);
    let statement = postgres_apply_events_call(&document, prune_before);
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .fetch_all(&mut *connection)
        .await?;
    let mut results: Vec<Option<BillingResult<WriteOutcome>>> =
        writes.iter().map(|_| None).collect();
    for row in &rows {
        let ordinal: i32 = row.try_get(0)?;
        let outcome: String = row.try_get(1)?;
        let user: Option<String> = row.try_get(2)?;
        let error: Option<String> = row.try_get(3)?;
        let result = match outcome.as_str() {
            "applied" => Ok(WriteOutcome::Applied { changed_user: user }),
            "duplicate" => Ok(WriteOutcome::Duplicate),
            "declined" => Ok(WriteOutcome::Declined),
            _ => Err(BillingError::Database(error.unwrap_or_else(|| {
                format!("the batch function answered `{outcome}`")
            }))),
        };
        if let Some(slot) = usize::try_from(ordinal)
            .ok()
            .and_then(|index| results.get_mut(index))
        {
            *slot = Some(result);
        }
    }
    Ok(results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(BillingError::Internal(
                    "the batch function did not answer for this event".into(),
                ))
            })
        })
        .collect())
}
