//! The event envelope: what every verified webhook body must be.

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
