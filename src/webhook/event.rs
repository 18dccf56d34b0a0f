//! The event envelope: what every verified webhook body must be.

use std::borrow::Cow;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventError {
    #[error("the webhook body is not JSON: {0}")]
    NotJson(String),
    #[error("the webhook body is not a Stripe event: {0}")]
    NotAnEvent(&'static str),
    #[error("thin events (\"object\": \"v2.core.event\") carry no snapshot and are not supported; point this endpoint at snapshot events")]
    ThinEvent,
}

/// A verified event: the fields routing and ordering need, and the whole JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub api_version: Option<String>,
    pub object: Value,
    pub raw: Value,
}

pub fn parse_event(payload: &[u8]) -> Result<EventEnvelope, EventError> {
    let raw: Value =
        serde_json::from_slice(payload).map_err(|e| EventError::NotJson(e.to_string()))?;
    let Some(map) = raw.as_object() else {
        return Err(EventError::NotAnEvent("it is not a JSON object"));
    };
    match map.get("object").and_then(Value::as_str) {
        Some("event") => {}
        Some("v2.core.event") => return Err(EventError::ThinEvent),
        _ => return Err(EventError::NotAnEvent("`object` is not \"event\"")),
    }
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 255)
        .ok_or(EventError::NotAnEvent("`id` is missing or not a string"))?
        .to_owned();
    let event_type = map
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 255)
        .ok_or(EventError::NotAnEvent("`type` is missing or not a string"))?
        .to_owned();
    let created = map
        .get("created")
        .and_then(Value::as_i64)
        .ok_or(EventError::NotAnEvent(
            "`created` is missing or not an integer",
        ))?;
    let object = map
        .get("data")
        .and_then(|d| d.get("object"))
        .filter(|o| o.is_object())
        .cloned()
        .ok_or(EventError::NotAnEvent(
            "`data.object` is missing or not an object",
        ))?;
    let api_version = map
        .get("api_version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(EventEnvelope {
        id,
        event_type,
        created,
        api_version,
        object,
        raw,
    })
}

/// The envelope's shape, read without building a document: strings borrowed,
/// `data.object` skipped once known to be an object.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    data: Option<DataShape>,
}

#[derive(Deserialize)]
struct DataShape {
    #[serde(default)]
    object: Option<AnyObject>,
}

/// Any JSON object, skipped.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Checks that a payload is a snapshot event, as `parse_event` would, without
/// building the document (for `constructEvent`, whose caller parses it in JS).
pub fn check_event(payload: &[u8]) -> Result<(), EventError> {
    let valid = serde_json::from_slice::<Shape<'_>>(payload).is_ok_and(|shape| {
        shape.object.as_deref() == Some("event")
            && shape
                .id
                .as_deref()
                .is_some_and(|id| !id.is_empty() && id.len() <= 255)
            && shape
                .event_type
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t.len() <= 255)
            && shape.created.is_some()
            && shape.data.is_some_and(|d| d.object.is_some())
    });
    if valid {
        return Ok(());
    }
    // The slow path names what is wrong.
    parse_event(payload).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        let event = parse_event(
            br#"{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1700000000,"data":{"object":{"id":"sub_1"}}}"#,
        )
        .unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.object["id"], "sub_1");
    }

    #[test]
    fn the_shape_check_agrees_with_the_parser() {
        let cases: [&[u8]; 9] = [
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":{"id":"sub_1"}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":[]}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1.5,"data":{"object":{}}}"#,
            br#"{"id":5,"object":"event","type":"x","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_\u00e9","object":"event","type":"x","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","object":"v2.core.event"}"#,
            b"[]",
            b"",
            br#"{"id":"evt_1","object":"event","type":"","created":1,"data":{"object":{}}}"#,
        ];
        for payload in cases {
            assert_eq!(
                check_event(payload).is_ok(),
                parse_event(payload).is_ok(),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn rejections() {
        assert!(matches!(
            parse_event(b"not json"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(parse_event(b"[]"), Err(EventError::NotAnEvent(_))));
        assert!(matches!(
            parse_event(br#"{"id":"evt_1","object":"v2.core.event"}"#),
            Err(EventError::ThinEvent)
        ));
        assert!(matches!(
            parse_event(br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{}}"#),
            Err(EventError::NotAnEvent(_))
        ));
    }
}
