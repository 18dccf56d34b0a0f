//! Reading Stripe objects on every API version: the fields this package uses,
//! wherever the payload's version puts them.

use serde_json::Value;

use super::projection::StoredSubscription;

/// One subscription item, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionItem {
    /// Stripe's item id (`si_…`): a plan change names the item it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub price: Option<String>,
    pub product: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_end: Option<i64>,
}

/// The item that represents a subscription: the latest period end, the first
/// item on a tie.
pub fn main_item(items: &[SubscriptionItem]) -> Option<&SubscriptionItem> {
    let mut best: Option<&SubscriptionItem> = None;
    for item in items {
        if best.is_none_or(|b| item.current_period_end > b.current_period_end) {
            best = Some(item);
        }
    }
    best
}

/// What this package keeps of a Stripe subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSnapshot {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub items: Vec<SubscriptionItem>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    /// When the subscription ended (canceled or expired), if it has.
    pub ended_at: Option<i64>,
    pub created: i64,
    /// `metadata.kavach_user_id`, set by this package's checkout.
    pub metadata_user_id: Option<String>,
}

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event's object is not a usable {kind}: {reason}")]
pub struct SnapshotError {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn text(object: &Value, name: &str) -> Option<String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An id field that may be expanded into an object (`"customer": {"id": ...}`).
fn id_of(object: &Value, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Object(expanded) => expanded
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn metadata_user(object: &Value) -> Option<String> {
    object
        .get("metadata")
        .and_then(|m| m.get(crate::config::USER_ID_METADATA_KEY))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_owned)
}

pub const SUBSCRIPTION_STATUSES: [&str; 8] = [
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

impl SubscriptionSnapshot {
    pub fn from_json(object: &Value) -> Result<Self, SnapshotError> {
        let fail = |reason| SnapshotError {
            kind: "subscription",
            reason,
        };
        if object
            .get("object")
            .and_then(Value::as_str)
            .is_some_and(|o| o != "subscription")
        {
            return Err(fail("`object` is not \"subscription\""));
        }
        let id = text(object, "id")
            .filter(|id| id.len() <= 255)
            .ok_or(fail("`id` is missing"))?;
        let customer_id = id_of(object, "customer")
            .filter(|c| c.len() <= 255)
            .ok_or(fail("`customer` is missing"))?;
        let status = text(object, "status")
            .filter(|s| SUBSCRIPTION_STATUSES.contains(&s.as_str()))
            .ok_or(fail("`status` is missing or unknown"))?;
        let created = object
            .get("created")
            .and_then(Value::as_i64)
            .ok_or(fail("`created` is missing"))?;
        // Before 2025-03-31.basil the period lived on the subscription itself.
        let legacy_period_end = object.get("current_period_end").and_then(Value::as_i64);
        let items = object
            .get("items")
            .and_then(|i| i.get("data"))
            .and_then(Value::as_array)
            .map(|data| {
                data.iter()
                    .map(|item| {
                        let price = item.get("price");
                        SubscriptionItem {
                            id: text(item, "id"),
                            price: price
                                .and_then(|p| text(p, "id"))
                                .or_else(|| item.get("plan").and_then(|p| text(p, "id"))),
                            product: price.and_then(|p| id_of(p, "product")),
                            quantity: item.get("quantity").and_then(Value::as_i64),
                            current_period_end: item
                                .get("current_period_end")
                                .and_then(Value::as_i64)
                                .or(legacy_period_end),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id,
            customer_id,
            status,
            items,
            cancel_at_period_end: object
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            cancel_at: object.get("cancel_at").and_then(Value::as_i64),
            trial_start: object.get("trial_start").and_then(Value::as_i64),
            trial_end: object.get("trial_end").and_then(Value::as_i64),
            ended_at: object.get("ended_at").and_then(Value::as_i64),
            created,
            metadata_user_id: metadata_user(object),
        })
    }

    /// The item that represents the subscription (see `main_item`).
    pub fn main_item(&self) -> Option<&SubscriptionItem> {
        main_item(&self.items)
    }

    /// The subscription as stored and projected (`events::projection`).
    pub fn stored(&self) -> StoredSubscription {
        let main = self.main_item();
        StoredSubscription {
            id: self.id.clone(),
            status: self.status.clone(),
            created: self.created,
            price_id: main.and_then(|i| i.price.clone()),
            current_period_end: main.and_then(|i| i.current_period_end),
            cancel_at_period_end: self.cancel_at_period_end,
            cancel_at: self.cancel_at,
        }
    }

    /// Scheduled to cancel: `cancel_at_period_end`, or (flexible billing, from
    /// 2025-09-30.clover) a `cancel_at` date.
    pub fn scheduled_to_cancel(&self) -> bool {
        self.cancel_at_period_end || self.cancel_at.is_some()
    }

    pub fn has_any_product(&self, products: &[String]) -> bool {
        self.items
            .iter()
            .any(|item| item.product.as_ref().is_some_and(|p| products.contains(p)))
    }
}

/// The subscription an invoice belongs to: `parent.subscription_details` from
/// basil on, the top-level `subscription` before.
pub fn invoice_subscription_id(invoice: &Value) -> Option<String> {
    invoice
        .get("parent")
        .and_then(|p| p.get("subscription_details"))
        .and_then(|d| id_of(d, "subscription"))
        .or_else(|| id_of(invoice, "subscription"))
}

/// The fields of a completed checkout session this package uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCompletion {
    pub session_id: String,
    pub mode: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub client_reference_id: Option<String>,
    pub metadata_user_id: Option<String>,
}

impl CheckoutCompletion {
    pub fn from_json(object: &Value) -> Result<Self, SnapshotError> {
        let fail = |reason| SnapshotError {
            kind: "checkout session",
            reason,
        };
        Ok(Self {
            session_id: text(object, "id").ok_or(fail("`id` is missing"))?,
            mode: text(object, "mode").ok_or(fail("`mode` is missing"))?,
            customer_id: id_of(object, "customer"),
            subscription_id: id_of(object, "subscription"),
            client_reference_id: text(object, "client_reference_id"),
            metadata_user_id: metadata_user(object),
        })
    }
}

/// `metadata.kavach_user_id` of a customer object (absent on deleted customers).
pub fn customer_metadata_user(customer: &Value) -> Option<String> {
    if customer.get("deleted").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    metadata_user(customer)
}

pub fn object_id(object: &Value) -> Option<String> {
    text(object, "id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn basil() -> Value {
        json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active", "created": 100,
            "cancel_at_period_end": false, "cancel_at": null, "trial_end": null,
            "metadata": { "kavach_user_id": "u1" },
            "items": { "data": [
                { "price": { "id": "price_a", "product": "prod_a" }, "quantity": 1, "current_period_end": 2000 },
                { "price": { "id": "price_b", "product": { "id": "prod_b" } }, "quantity": 2, "current_period_end": 3000 },
                { "price": { "id": "price_c", "product": "prod_c" }, "quantity": 1, "current_period_end": 3000 }
            ]}
        })
    }

    #[test]
    fn basil_shape_reads_the_period_from_items() {
        let snap = SubscriptionSnapshot::from_json(&basil()).unwrap();
        let main = snap.main_item().unwrap();
        assert_eq!(
            main.price.as_deref(),
            Some("price_b"),
            "latest period end, first on a tie"
        );
        assert_eq!(main.current_period_end, Some(3000));
        assert_eq!(
            snap.items[1].product.as_deref(),
            Some("prod_b"),
            "expanded product"
        );
        assert_eq!(snap.metadata_user_id.as_deref(), Some("u1"));
        assert!(snap.has_any_product(&["prod_c".into()]));
        assert!(!snap.has_any_product(&["prod_x".into()]));
    }

    #[test]
    fn legacy_shape_reads_the_period_from_the_subscription() {
        let legacy = json!({
            "id": "sub_2", "object": "subscription", "customer": { "id": "cus_2" }, "status": "trialing",
            "created": 5, "current_period_end": 4242, "cancel_at_period_end": true,
            "items": { "data": [ { "price": { "id": "price_old", "product": "prod_old" }, "quantity": 1 } ] }
        });
        let snap = SubscriptionSnapshot::from_json(&legacy).unwrap();
        assert_eq!(snap.customer_id, "cus_2");
        assert_eq!(snap.main_item().unwrap().current_period_end, Some(4242));
        assert!(snap.scheduled_to_cancel());
    }

    #[test]
    fn clover_cancel_at_counts_as_scheduled() {
        let mut object = basil();
        object["cancel_at"] = json!(9999);
        assert!(SubscriptionSnapshot::from_json(&object)
            .unwrap()
            .scheduled_to_cancel());
    }

    #[test]
    fn bad_subscriptions_are_refused() {
        for (field, value) in [
            ("status", json!("weird")),
            ("customer", Value::Null),
            ("created", json!("x")),
            ("id", json!(5)),
        ] {
            let mut object = basil();
            object[field] = value;
            assert!(SubscriptionSnapshot::from_json(&object).is_err(), "{field}");
        }
    }

    #[test]
    fn invoice_subscription_on_both_shapes() {
        assert_eq!(
            invoice_subscription_id(
                &json!({ "parent": { "subscription_details": { "subscription": "sub_new" } }, "subscription": null })
            ),
            Some("sub_new".into())
        );
        assert_eq!(
            invoice_subscription_id(&json!({ "subscription": "sub_old" })),
            Some("sub_old".into())
        );
        assert_eq!(invoice_subscription_id(&json!({ "parent": null })), None);
    }

    #[test]
    fn checkout_and_customer() {
        let done = CheckoutCompletion::from_json(&json!({
            "id": "cs_1", "mode": "subscription", "customer": "cus_1", "subscription": "sub_1", "client_reference_id": "u1"
        }))
        .unwrap();
        assert_eq!(done.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(
            customer_metadata_user(&json!({ "metadata": { "kavach_user_id": "u9" } })),
            Some("u9".into())
        );
        assert_eq!(
            customer_metadata_user(
                &json!({ "deleted": true, "metadata": { "kavach_user_id": "u9" } })
            ),
            None
        );
    }
}
