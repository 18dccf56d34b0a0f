//! `onEvent`: every verified event of a handled or wanted type goes to the
//! app once, after the package's own work for it is committed (and after
//! `onSubscriptionChange` / `onTrialWillEnd`). A callback that throws fails
//! the webhook (500 `event_listener_failed`); Stripe's retry finds the
//! package's work done and calls the callback again.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BillingService, EventReply};
use crate::error::{BillingError, BillingResult};
use crate::events::{HANDLED_EVENT_TYPES, LEASE_SECS};
use crate::store::DeliveryClaim;
use crate::webhook::parse_event;

const WAIT_FOR_OTHER_DELIVERY: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const PRUNE_INTERVAL_SECS: i64 = 3600;

impl BillingService {
    /// Whether `onEvent` wants events of this type.
    fn wants_event(&self, event_type: &str) -> bool {
        HANDLED_EVENT_TYPES.contains(&event_type)
            || self.config.event_types.iter().any(|t| t == event_type)
    }

    /// `reply`, preceded by the `onEvent` call when the app wants this event.
    pub(super) fn with_event_listener(
        self: &Arc<Self>,
        payload: &[u8],
        reply: EventReply,
    ) -> EventReply {
        if self.event_listener.is_none() {
            return reply;
        }
        // An unreadable event fails in the processing; nothing to deliver.
        let Ok(event) = parse_event(payload) else {
            return reply;
        };
        if !self.wants_event(&event.event_type) {
            return reply;
        }
        let service = Arc::clone(self);
        let payload = String::from_utf8_lossy(payload).into_owned();
        // The package keeps no ledger row for the types only the app wants:
        // their deliveries are what tells a redelivery apart.
        let handled = HANDLED_EVENT_TYPES.contains(&event.event_type.as_str());
        Box::new(move |result| match result {
            Ok(mut body) => {
                let runtime = service.runtime.clone();
                runtime.spawn(async move {
                    let delivered = service.deliver_event(&event.id, payload).await;
                    reply(delivered.map(|called| {
                        if !called && !handled {
                            body["duplicate"] = serde_json::Value::Bool(true);
                        }
                        body
                    }));
                });
            }
            Err(error) => reply(Err(error)),
        })
    }

    /// Calls `onEvent` unless a delivery already did, successfully; whether
    /// this call made it.
    async fn deliver_event(&self, event_id: &str, payload: String) -> BillingResult<bool> {
        let Some(listener) = &self.event_listener else {
            return Ok(false);
        };
        let give_up_at = Instant::now() + WAIT_FOR_OTHER_DELIVERY;
        loop {
            let now = chrono::Utc::now().timestamp();
            match self
                .store
                .claim_event_delivery(event_id, now, LEASE_SECS)
                .await?
            {
                DeliveryClaim::Delivered => return Ok(false),
                DeliveryClaim::Claimed => break,
                DeliveryClaim::InProgress if Instant::now() >= give_up_at => {
                    return Err(BillingError::EventInProgress)
                }
                DeliveryClaim::InProgress => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
        match listener.event(payload).await {
            Ok(()) => {
                let now = chrono::Utc::now().timestamp();
                self.store.finish_event_delivery(event_id, now).await?;
                self.prune_deliveries_when_due(now).await;
                Ok(true)
            }
            Err(message) => {
                // If even this fails, the lease expires and a retry takes over.
                let _ = self.store.release_event_delivery(event_id).await;
                Err(BillingError::EventListenerFailed(message))
            }
        }
    }

    /// Delivered ids are kept as long as handled ids in the ledger.
    async fn prune_deliveries_when_due(&self, now: i64) {
        let days = i64::from(self.config.event_retention_days);
        if days == 0 {
            return;
        }
        let last = self.last_delivery_prune.load(AtomicOrdering::Relaxed);
        if now - last < PRUNE_INTERVAL_SECS
            || self
                .last_delivery_prune
                .compare_exchange(last, now, AtomicOrdering::Relaxed, AtomicOrdering::Relaxed)
                .is_err()
        {
            return;
        }
        let _ = self.store.prune_event_deliveries(now - days * 86_400).await;
    }
}
