//! The subscription object and its items, in the newest (basil and later)
//! shape: the billing period is on each item.

use serde_json::{json, Map, Value};

use crate::billing::periods::period_end;
use crate::ids::new_id;

/// What a new subscription is made of.
pub struct NewSubscription<'a> {
    pub customer: &'a str,
    /// Each price (the full object) with its quantity.
    pub items: Vec<(Value, i64)>,
    pub trial_end: Option<i64>,
    pub metadata: Map<String, Value>,
    pub default_payment_method: Option<String>,
    pub billing_mode: &'a str,
    pub now: i64,
}

pub fn new_subscription(spec: NewSubscription<'_>) -> Value {
    let id = new_id("sub");
    let period_start = spec.now;
    let items: Vec<Value> = spec
        .items
        .iter()
        .map(|(price, quantity)| {
            let end = spec
                .trial_end
                .unwrap_or_else(|| period_end(period_start, &price["recurring"]));
            new_item(&id, price, *quantity, period_start, end, spec.now)
        })
        .collect();
    let currency = spec
        .items
        .first()
        .map(|(price, _)| price["currency"].clone())
        .unwrap_or(json!("usd"));
    json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "automatic_tax": {"enabled": false, "liability": null},
        "billing_cycle_anchor": spec.trial_end.unwrap_or(period_start),
        "billing_mode": {"type": spec.billing_mode},
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": "charge_automatically",
        "created": spec.now,
        "currency": currency,
        "customer": spec.customer,
        "days_until_due": null,
        "default_payment_method": spec.default_payment_method,
        "description": null,
        "discounts": [],
        "ended_at": null,
        "items": items_list(&id, items),
        "latest_invoice": null,
        "livemode": false,
        "metadata": spec.metadata,
        "pause_collection": null,
        "pending_update": null,
        "start_date": spec.now,
        "status": if spec.trial_end.is_some() { "trialing" } else { "incomplete" },
        "test_clock": null,
        "trial_end": spec.trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": spec.trial_end.map(|_| spec.now),
    })
}

pub fn new_item(
    subscription: &str,
    price: &Value,
    quantity: i64,
    start: i64,
    end: i64,
    now: i64,
) -> Value {
    json!({
        "id": new_id("si"),
        "object": "subscription_item",
        "created": now,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": price,
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    })
}

pub fn items_list(subscription: &str, items: Vec<Value>) -> Value {
    let total = items.len();
    json!({
        "object": "list",
        "data": items,
        "has_more": false,
        "total_count": total,
        "url": format!("/v1/subscription_items?subscription={subscription}"),
    })
}

/// The subscription's items (as a vector, for editing).
pub fn items_of(subscription: &Value) -> Vec<Value> {
    subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The current period: the earliest start and the latest end over the items.
pub fn current_period(subscription: &Value) -> (i64, i64) {
    let items = items_of(subscription);
    let start = items
        .iter()
        .filter_map(|i| i["current_period_start"].as_i64())
        .min()
        .unwrap_or_default();
    let end = items
        .iter()
        .filter_map(|i| i["current_period_end"].as_i64())
        .max()
        .unwrap_or_default();
    (start, end)
}

/// A statuses in which Stripe still bills the subscription.
pub fn has_ended(subscription: &Value) -> bool {
    matches!(
        subscription["status"].as_str(),
        Some("canceled" | "incomplete_expired")
    )
}
