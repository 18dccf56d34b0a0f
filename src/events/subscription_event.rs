//! `customer.subscription.*` events read straight into typed structs, with
//! strings borrowed from the payload and every field this package ignores
//! skipped, instead of building a `serde_json::Value` of the whole event.
//!
//! This is the fast reader of the webhook hot path. It accepts a subset of
//! what `webhook::parse_event` plus `SubscriptionSnapshot::from_json` accept
//! (a field of an unexpected JSON type, or a duplicated key, makes it give up)
//! and, on that subset, produces exactly what they produce: a `None` sends the
//! event down the general path, which reads it the slow way and names any
//! problem.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::snapshot::{SubscriptionItem, SubscriptionSnapshot, SUBSCRIPTION_STATUSES};
use crate::config::USER_ID_METADATA_KEY;

/// The subscription event types the fast reader takes.
pub const SUBSCRIPTION_EVENT_TYPES: [&str; 5] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    // A plan change held by `payment_behavior=pending_if_incomplete` was paid
    // (applied) or expired unpaid (the old plan stays): either way the event
    // carries the subscription as it is now.
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
];

/// A verified subscription event, as the writer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    /// `canceled` for `customer.subscription.deleted`.
    pub snapshot: SubscriptionSnapshot,
}

/// Reads a subscription event; `None` when the payload is anything else or
/// needs the general reader.
pub fn read_subscription_event(payload: &[u8]) -> Option<SubscriptionEvent> {
    let Object(document): Object<EventDoc<'_>> = serde_json::from_slice(payload).ok()?;
    if document.object.0 != "event" {
        return None;
    }
    let id = non_empty(document.id.0).filter(|id| id.len() <= 255)?;
    let event_type = document.event_type.0;
    if !SUBSCRIPTION_EVENT_TYPES.contains(&event_type.as_ref()) {
        return None;
    }
    let mut snapshot = document.data.0.object.0.into_snapshot()?;
    if event_type == "customer.subscription.deleted" {
        "canceled".clone_into(&mut snapshot.status);
    }
    Some(SubscriptionEvent {
        id,
        event_type: event_type.into_owned(),
        created: document.created,
        snapshot,
    })
}

fn non_empty(text: Cow<'_, str>) -> Option<String> {
    (!text.is_empty()).then(|| text.into_owned())
}

/// A JSON object read into `T`. Derived structs would also accept a JSON
/// array (field by position), which the general reader never takes.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A JSON string, borrowed from the payload unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// An id, or the object it was expanded into (`{"id": ...}`).
enum IdRef<'a> {
    Id(Text<'a>),
    Expanded(Option<Text<'a>>),
}

impl IdRef<'_> {
    /// As `snapshot::id_of` reads it: a non-empty string, or the expanded
    /// object's `id` string.
    fn into_id(self) -> Option<String> {
        match self {
            IdRef::Id(text) => non_empty(text.0),
            IdRef::Expanded(id) => id.map(|text| text.0.into_owned()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for IdRef<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = IdRef<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id or an expanded object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<IdRef<'a>, E> {
                Ok(IdRef::Id(Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdRef<'a>, E> {
                Ok(IdRef::Id(Text(Cow::Owned(v.to_owned()))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdRef<'a>, A::Error> {
                let mut id = None;
                let mut seen = false;
                while let Some(key) = map.next_key::<Text<'a>>()? {
                    if key.0 == "id" {
                        if seen {
                            return Err(de::Error::duplicate_field("id"));
                        }
                        seen = true;
                        id = map.next_value::<Option<Text<'a>>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(IdRef::Expanded(id))
            }
        }
        deserializer.deserialize_any(IdVisitor(PhantomData))
    }
}

/// A metadata object, of which only `kavach_user_id` is kept.
struct MetadataUser<'a>(Option<Text<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MetadataUser<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MetadataVisitor<'a> {
            type Value = MetadataUser<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metadata object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MetadataUser<'a>, A::Error> {
                let mut user = None;
                while let Some(key) = map.next_key::<Text<'a>>()? {
                    if key.0 == USER_ID_METADATA_KEY {
                        // The last of duplicated keys wins, as in serde_json's maps.
                        user = map.next_value::<Option<Text<'a>>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(MetadataUser(user))
            }
        }
        deserializer.deserialize_map(MetadataVisitor(PhantomData))
    }
}

#[derive(Deserialize)]
struct EventDoc<'a> {
    #[serde(borrow)]
    object: Text<'a>,
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow, rename = "type")]
    event_type: Text<'a>,
    created: i64,
    #[serde(borrow)]
    data: Object<DataDoc<'a>>,
}

#[derive(Deserialize)]
struct DataDoc<'a> {
    #[serde(borrow)]
    object: Object<SubscriptionDoc<'a>>,
}

#[derive(Deserialize)]
struct SubscriptionDoc<'a> {
    #[serde(borrow, default)]
    object: Option<Text<'a>>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    customer: Option<IdRef<'a>>,
    #[serde(borrow, default)]
    status: Option<Text<'a>>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(borrow, default)]
    items: Option<Object<ItemsDoc<'a>>>,
    #[serde(default)]
    cancel_at_period_end: Option<bool>,
    #[serde(default)]
    cancel_at: Option<i64>,
    #[serde(default)]
    trial_start: Option<i64>,
    #[serde(default)]
    trial_end: Option<i64>,
    #[serde(default)]
    ended_at: Option<i64>,
    #[serde(borrow, default)]
    metadata: Option<MetadataUser<'a>>,
}

#[derive(Deserialize)]
struct ItemsDoc<'a> {
    #[serde(borrow, default)]
    data: Option<Vec<Object<ItemDoc<'a>>>>,
}

#[derive(Deserialize)]
struct ItemDoc<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    price: Option<Object<PriceDoc<'a>>>,
    #[serde(borrow, default)]
    plan: Option<Object<PlanDoc<'a>>>,
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct PriceDoc<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    product: Option<IdRef<'a>>,
}

#[derive(Deserialize)]
struct PlanDoc<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
}

fn text(value: Option<Text<'_>>) -> Option<String> {
    value.and_then(|t| non_empty(t.0))
}

impl SubscriptionDoc<'_> {
    /// The same checks and defaults as `SubscriptionSnapshot::from_json`.
    fn into_snapshot(self) -> Option<SubscriptionSnapshot> {
        if self.object.is_some_and(|o| o.0 != "subscription") {
            return None;
        }
        let id = text(self.id).filter(|id| id.len() <= 255)?;
        let customer_id = self
            .customer
            .and_then(IdRef::into_id)
            .filter(|c| c.len() <= 255)?;
        let status = text(self.status).filter(|s| SUBSCRIPTION_STATUSES.contains(&s.as_str()))?;
        let created = self.created?;
        let legacy_period_end = self.current_period_end;
        let items = self
            .items
            .and_then(|items| items.0.data)
            .unwrap_or_default()
            .into_iter()
            .map(|Object(item)| {
                let (price_id, product) = match item.price {
                    Some(Object(price)) => (text(price.id), price.product.and_then(IdRef::into_id)),
                    None => (None, None),
                };
                SubscriptionItem {
                    id: text(item.id),
                    price: price_id.or_else(|| item.plan.and_then(|plan| text(plan.0.id))),
                    product,
                    quantity: item.quantity,
                    current_period_end: item.current_period_end.or(legacy_period_end),
                }
            })
            .collect();
        Some(SubscriptionSnapshot {
            id,
            customer_id,
            status,
            items,
            cancel_at_period_end: self.cancel_at_period_end.unwrap_or(false),
            cancel_at: self.cancel_at,
            trial_start: self.trial_start,
            trial_end: self.trial_end,
            ended_at: self.ended_at,
            created,
            metadata_user_id: self
                .metadata
                .and_then(|m| text(m.0))
                .filter(|user| user.len() <= 255),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::parse_event;
    use serde_json::{json, Value};

    /// What the general path reads from the same payload.
    fn slow(payload: &[u8]) -> Option<SubscriptionEvent> {
        let event = parse_event(payload).ok()?;
        if !SUBSCRIPTION_EVENT_TYPES.contains(&event.event_type.as_str()) {
            return None;
        }
        let mut snapshot = SubscriptionSnapshot::from_json(&event.object).ok()?;
        if event.event_type == "customer.subscription.deleted" {
            snapshot.status = "canceled".into();
        }
        Some(SubscriptionEvent {
            id: event.id,
            event_type: event.event_type,
            created: event.created,
            snapshot,
        })
    }

    fn agree(payload: &[u8]) {
        if let Some(fast) = read_subscription_event(payload) {
            assert_eq!(
                Some(fast),
                slow(payload),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    fn event(object: Value) -> Value {
        json!({ "id": "evt_1", "object": "event", "type": "customer.subscription.updated",
                "created": 1_700_000_000, "livemode": false, "data": { "object": object, "previous_attributes": {} } })
    }

    fn subscription() -> Value {
        json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active", "created": 100,
            "cancel_at_period_end": false, "cancel_at": null, "trial_start": 50, "trial_end": 90,
            "ended_at": null,
            "metadata": { "a": "b", "kavach_user_id": "u1", "z": { "deep": [1, 2] } },
            "items": { "object": "list", "data": [
                { "price": { "id": "price_a", "product": "prod_a" }, "quantity": 1, "current_period_end": 2000 },
                { "price": { "id": "price_b", "product": { "id": "prod_b", "name": "B" } }, "quantity": 2, "current_period_end": 3000 },
                { "price": null, "plan": { "id": "plan_c" }, "quantity": 1 }
            ]}
        })
    }

    #[test]
    fn reads_what_the_general_reader_reads() {
        let payload = serde_json::to_vec(&event(subscription())).unwrap();
        let fast = read_subscription_event(&payload).expect("read");
        assert_eq!(fast.snapshot.metadata_user_id.as_deref(), Some("u1"));
        assert_eq!(fast.snapshot.items[1].product.as_deref(), Some("prod_b"));
        assert_eq!(fast.snapshot.items[2].price.as_deref(), Some("plan_c"));
        assert_eq!(Some(fast), slow(&payload));
    }

    #[test]
    fn deleted_is_canceled_and_other_types_are_not_read() {
        let mut document = event(subscription());
        document["type"] = json!("customer.subscription.deleted");
        let payload = serde_json::to_vec(&document).unwrap();
        assert_eq!(
            read_subscription_event(&payload).unwrap().snapshot.status,
            "canceled"
        );
        document["type"] = json!("invoice.payment_failed");
        assert!(read_subscription_event(&serde_json::to_vec(&document).unwrap()).is_none());
    }

    #[test]
    fn unusual_shapes_agree_or_fall_back() {
        let variants: Vec<(&str, Value)> = vec![
            ("customer", json!({ "id": "" })),
            ("customer", json!({ "id": "cus_x", "id2": 1 })),
            ("customer", json!("")),
            ("customer", json!(5)),
            ("status", json!("weird")),
            ("status", json!(null)),
            ("created", json!(1.5)),
            ("object", json!(7)),
            ("object", json!("invoice")),
            ("metadata", json!(null)),
            ("metadata", json!({ "kavach_user_id": "" })),
            ("metadata", json!({ "kavach_user_id": 5 })),
            ("metadata", json!({ "kavach_user_id": "x".repeat(256) })),
            ("items", json!(null)),
            ("items", json!({ "data": null })),
            ("items", json!({ "data": [ { "price": "price_str" } ] })),
            ("items", json!({ "data": [ 5 ] })),
            ("current_period_end", json!(4242)),
            ("cancel_at", json!("soon")),
            ("trial_start", json!(1_699_000_000)),
            ("trial_start", json!("yesterday")),
            ("trial_end", json!(1_701_000_000)),
            ("ended_at", json!(1_702_000_000)),
            ("ended_at", json!(-1.5)),
            ("cancel_at_period_end", json!(null)),
            ("id", json!("sub_\u{e9}\"quoted\"")),
        ];
        for (field, value) in variants {
            let mut object = subscription();
            object[field] = value;
            agree(&serde_json::to_vec(&event(object)).unwrap());
        }
        // Escapes, duplicated keys, and envelopes the general reader refuses.
        for raw in [
            r#"{"id":"evt_\u0031","object":"event","type":"customer.subscription.created","created":5,"data":{"object":{"id":"sub_1","customer":"cus_1","status":"active","created":1,"metadata":{"kavach_user_id":"a","kavach_user_id":"b"}}}}"#,
            r#"{"id":"evt_1","object":"event","type":"customer.subscription.created","created":5,"data":{"object":{"id":"sub_1","id":"sub_2","customer":"cus_1","status":"active","created":1}}}"#,
            r#"{"id":"","object":"event","type":"customer.subscription.created","created":5,"data":{"object":{"id":"sub_1","customer":"cus_1","status":"active","created":1}}}"#,
            r#"{"id":"evt_1","object":"v2.core.event","type":"customer.subscription.created","created":5,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","object":"event","type":"customer.subscription.created","created":5,"data":{"object":[]}}"#,
            r#"["event","evt_1","customer.subscription.created",5,[[null,"sub_1","cus_1","active",1]]]"#,
            r#"{"id":"evt_1","object":"event","type":"customer.subscription.created","created":5,"data":{"object":{"id":"sub_1","customer":"cus_1","status":"active","created":1,"items":[[{"id":"price_x"}]]}}}"#,
        ] {
            agree(raw.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn never_disagrees_with_the_general_reader(
            status in proptest::sample::select(vec!["active", "trialing", "canceled", "bogus", ""]),
            customer in proptest::option::of("[a-z_]{0,6}"),
            expanded in proptest::bool::ANY,
            created in proptest::option::of(-5i64..5),
            cancel in proptest::option::of(proptest::bool::ANY),
            user in proptest::option::of("[a-z]{0,3}"),
            period in proptest::option::of(0i64..3),
            items in 0usize..3,
        ) {
            let mut object = json!({ "id": "sub_p", "object": "subscription", "status": status });
            if let Some(customer) = customer {
                object["customer"] = if expanded { json!({ "id": customer }) } else { json!(customer) };
            }
            if let Some(created) = created { object["created"] = json!(created); }
            if let Some(cancel) = cancel { object["cancel_at_period_end"] = json!(cancel); }
            if let Some(user) = user { object["metadata"] = json!({ "kavach_user_id": user }); }
            if let Some(period) = period { object["current_period_end"] = json!(period); }
            let data: Vec<Value> = (0..items)
                .map(|i| json!({ "price": { "id": format!("price_{i}"), "product": "prod" }, "current_period_end": i }))
                .collect();
            object["items"] = json!({ "data": data });
            agree(&serde_json::to_vec(&event(object)).unwrap());
        }
    }
}
