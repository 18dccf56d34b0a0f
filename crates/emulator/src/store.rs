//! Everything the emulator holds: Stripe's objects in memory, by kind, in
//! creation order, with the events they emitted and every delivery attempt.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::ids::new_id;

/// Objects of one kind, by id, remembering the order they were created in
/// (Stripe lists newest first).
#[derive(Debug, Default, Clone)]
pub struct Collection {
    objects: HashMap<String, Value>,
    order: Vec<String>,
}

impl Collection {
    pub fn insert(&mut self, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_owned();
        if self.objects.insert(id.clone(), object).is_none() {
            self.order.push(id);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.objects.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let removed = self.objects.remove(id);
        if removed.is_some() {
            self.order.retain(|kept| kept != id);
        }
        removed
    }

    pub fn newest_first(&self) -> impl Iterator<Item = &Value> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.objects.get(id))
    }

    pub fn oldest_first(&self) -> impl Iterator<Item = &Value> {
        self.order.iter().filter_map(|id| self.objects.get(id))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Who caused a change: the API request (its id and idempotency key), or
/// nobody (a hosted page, the clock).
#[derive(Debug, Clone, Default)]
pub struct Cause {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// One try at delivering one event to one endpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    pub attempt: u32,
    /// A chaos-made second copy of the event.
    pub duplicate: bool,
    /// Unix milliseconds, wall clock.
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response_body: String,
    pub succeeded: bool,
}

/// What happens when the retries of a failed renewal run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetriesEnd {
    /// The subscription is canceled (`cancellation_details.reason=payment_failed`).
    #[default]
    Cancel,
    /// The subscription becomes `unpaid`; later invoices stay drafts.
    Unpaid,
    /// The subscription stays `past_due`.
    PastDue,
}

/// The account's Billing settings the emulator models.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Days after the first failed attempt on which a renewal is retried
    /// (Smart Retries, compressed).
    pub retry_days: Vec<i64>,
    pub when_retries_end: RetriesEnd,
    /// `billing_mode[type]` of new subscriptions: under `flexible` the
    /// portal schedules a cancellation with `cancel_at`, under `classic`
    /// with `cancel_at_period_end`.
    pub billing_mode: String,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            retry_days: vec![1, 3, 7],
            when_retries_end: RetriesEnd::Cancel,
            billing_mode: "flexible".to_owned(),
        }
    }
}

/// A Checkout session's line items and subscription terms.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CheckoutTerms {
    /// Each price (the full object) with its quantity.
    pub items: Vec<(Value, i64)>,
    pub trial_period_days: Option<i64>,
    pub subscription_metadata: serde_json::Map<String, Value>,
}

/// A saved answer for an `Idempotency-Key`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedAnswer {
    pub method: String,
    pub path: String,
    pub fingerprint: Vec<(String, String)>,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Default, Clone)]
pub struct Store {
    pub clock: Clock,
    pub customers: Collection,
    pub products: Collection,
    pub prices: Collection,
    pub payment_methods: Collection,
    pub checkout_sessions: Collection,
    pub portal_sessions: Collection,
    pub subscriptions: Collection,
    pub invoices: Collection,
    pub invoice_items: Collection,
    pub events: Collection,
    pub webhook_endpoints: Collection,
    pub deliveries: Vec<DeliveryAttempt>,
    pub idempotency: HashMap<String, SavedAnswer>,
    /// Which test card each payment method is (not part of its public shape).
    pub card_behaviours: HashMap<String, crate::cards::CardBehaviour>,
    /// What each Checkout session sells (Stripe shows it only as `line_items`).
    pub checkout_terms: HashMap<String, CheckoutTerms>,
    /// Each webhook endpoint's signing secret (shown once, on creation).
    pub endpoint_secrets: HashMap<String, String>,
    /// Test clocks (they all share the emulator's one clock).
    pub test_clocks: Collection,
    /// Subscriptions (with the trial end) whose `trial_will_end` was sent.
    pub trial_notices: HashSet<String>,
    /// When each invoice's automatic payment first failed (retries count from it).
    pub first_failures: HashMap<String, i64>,
    pub settings: BillingSettings,
    /// Test-clock advances asked for, run after the request answers.
    pub clock_advances: Vec<(String, i64)>,
    /// Events emitted by the operation in progress, for the deliverer.
    outbox: Vec<String>,
    /// The emulator's own address, for hosted page URLs.
    pub base_url: String,
}

impl Store {
    pub fn new(base_url: String) -> Self {
        Self {
            base_url,
            ..Self::default()
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Records an event for `object` (a snapshot taken now) and queues it.
    pub fn emit(&mut self, kind: &str, object: &Value, previous: Option<Value>, cause: &Cause) {
        let mut data = json!({ "object": object.clone() });
        if let Some(previous) = previous.filter(|p| p.as_object().is_some_and(|m| !m.is_empty())) {
            data["previous_attributes"] = previous;
        }
        let pending = self
            .webhook_endpoints
            .oldest_first()
            .filter(|endpoint| endpoint_wants(endpoint, kind))
            .count();
        let event = json!({
            "id": new_id("evt"),
            "object": "event",
            "api_version": Value::Null,
            "created": self.now(),
            "data": data,
            "livemode": false,
            "pending_webhooks": pending,
            "request": {
                "id": cause.request_id,
                "idempotency_key": cause.idempotency_key,
            },
            "type": kind,
        });
        self.outbox
            .push(event["id"].as_str().unwrap_or_default().to_owned());
        self.events.insert(event);
    }

    /// The top-level fields of `before` that differ in `after`, with their old
    /// values: an `updated` event's `previous_attributes`.
    pub fn changed_fields(before: &Value, after: &Value) -> Value {
        let mut previous = serde_json::Map::new();
        if let (Some(old), Some(new)) = (before.as_object(), after.as_object()) {
            for (key, old_value) in old {
                if new.get(key) != Some(old_value) {
                    previous.insert(key.clone(), old_value.clone());
                }
            }
        }
        Value::Object(previous)
    }

    /// Queues an existing event for delivery again (the dashboard's resend).
    pub fn redeliver(&mut self, id: &str) -> bool {
        let known = self.events.get(id).is_some();
        if known {
            self.outbox.push(id.to_owned());
        }
        known
    }

    pub fn take_outbox(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outbox)
    }

    /// Any object, found by id across kinds (for `expand[]`).
    pub fn find_any(&self, id: &str) -> Option<&Value> {
        [
            &self.customers,
            &self.products,
            &self.prices,
            &self.payment_methods,
            &self.checkout_sessions,
            &self.portal_sessions,
            &self.subscriptions,
            &self.invoices,
            &self.invoice_items,
            &self.events,
            &self.test_clocks,
        ]
        .into_iter()
        .find_map(|collection| collection.get(id))
    }
}

/// Whether an endpoint's `enabled_events` include an event type.
pub fn endpoint_wants(endpoint: &Value, kind: &str) -> bool {
    endpoint["status"] != "disabled"
        && endpoint["enabled_events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e == "*" || e == kind))
}
