//! `reconcile`: events Stripe holds that never reached the webhook (an
//! outage longer than Stripe's three days of retries, a misconfigured
//! endpoint) are listed from `GET /v1/events` and handled through the same
//! code as a webhook, oldest first. The ledger makes it safe at any time,
//! from several processes, while webhooks arrive.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::BillingService;
use crate::error::{BillingError, BillingResult};
use crate::events::HANDLED_EVENT_TYPES;

/// Stripe lists events for 30 days.
pub const STRIPE_EVENT_DAYS: i64 = 30;
/// `types[]` accepts at most 20 types per request.
const TYPES_PER_REQUEST: usize = 20;
/// Events are listed in `created` windows of this size, oldest first, so at
/// most one window's events are held at a time.
const WINDOW_SECS: i64 = 6 * 3600;
const PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileCounts {
    pub fetched: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub failed: u64,
}

fn query_value(text: &str) -> String {
    // Event types and ids are letters, digits, `_` and `.`: nothing to escape.
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        .collect()
}

impl BillingService {
    /// The event types `reconcile` lists: the handled ones, then `onEventTypes`.
    fn reconciled_types(&self) -> Vec<String> {
        let mut types: Vec<String> = HANDLED_EVENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        for wanted in &self.config.event_types {
            if !types.contains(wanted) {
                types.push(wanted.clone());
            }
        }
        types
    }

    /// The earliest `since` the ledger and Stripe allow, and why.
    fn reconcile_floor(&self, now: i64) -> (i64, String) {
        let retention = i64::from(self.config.event_retention_days);
        if retention != 0 && retention < STRIPE_EVENT_DAYS {
            (
                now - retention * 86_400,
                format!(
                    "the ledger keeps handled event ids for eventRetentionDays ({retention} days)"
                ),
            )
        } else {
            (
                now - STRIPE_EVENT_DAYS * 86_400,
                format!("Stripe lists events for {STRIPE_EVENT_DAYS} days"),
            )
        }
    }

    pub async fn reconcile(
        self: &Arc<Self>,
        since: Option<i64>,
        until: Option<i64>,
    ) -> BillingResult<ReconcileCounts> {
        self.ensure_open()?;
        let now = chrono::Utc::now().timestamp();
        let (floor, why) = self.reconcile_floor(now);
        let since = since.unwrap_or(floor);
        // A minute of slack for a `since` computed from the same limit.
        if since < floor - 60 {
            return Err(BillingError::invalid_argument(
                "since",
                format!("is too long ago: {why}"),
            ));
        }
        let until = until.unwrap_or(now + 1).min(now + 1);
        if until <= since {
            return Err(BillingError::invalid_argument(
                "until",
                "must be after `since` (and not in the future)",
            ));
        }
        let types = self.reconciled_types();
        let mut counts = ReconcileCounts::default();
        let mut window_start = since;
        while window_start < until {
            let window_end = (window_start + WINDOW_SECS).min(until);
            // Every type chunk's events of the window, keyed for created order.
            let mut window: BTreeMap<(i64, String), Value> = BTreeMap::new();
            for chunk in types.chunks(TYPES_PER_REQUEST) {
                let mut starting_after: Option<String> = None;
                loop {
                    let mut path = format!(
                        "/v1/events?limit={PAGE_SIZE}&created[gte]={window_start}&created[lt]={window_end}"
                    );
                    for event_type in chunk {
                        path.push_str(&format!("&types[]={}", query_value(event_type)));
                    }
                    if let Some(after) = &starting_after {
                        path.push_str(&format!("&starting_after={}", query_value(after)));
                    }
                    let page = self.stripe.get(&path).await?;
                    let data = page
                        .get("data")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for event in &data {
                        let id = event.get("id").and_then(Value::as_str);
                        let created = event.get("created").and_then(Value::as_i64);
                        if let (Some(id), Some(created)) = (id, created) {
                            window.insert((created, id.to_owned()), event.clone());
                        }
                    }
                    let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
                    starting_after = data
                        .last()
                        .and_then(|e| e.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    if !more || starting_after.is_none() {
                        break;
                    }
                }
            }
            for event in window.into_values() {
                counts.fetched += 1;
                let payload = serde_json::to_vec(&event)
                    .map_err(|e| BillingError::Internal(format!("cannot encode an event: {e}")))?;
                let (sender, answer) = tokio::sync::oneshot::channel();
                self.receive_event(
                    &payload,
                    Box::new(move |result| {
                        let _ = sender.send(result);
                    }),
                );
                match answer.await {
                    Ok(Ok(body)) if body.get("duplicate").is_some() => counts.duplicates += 1,
                    Ok(Ok(body)) if body.get("ignored").is_some() => counts.ignored += 1,
                    Ok(Ok(_)) => counts.applied += 1,
                    Ok(Err(_)) | Err(_) => counts.failed += 1,
                }
            }
            window_start = window_end;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_carry_only_id_characters() {
        assert_eq!(query_value("invoice.paid"), "invoice.paid");
        assert_eq!(query_value("evt_1&types[]=x"), "evt_1typesx");
    }
}
