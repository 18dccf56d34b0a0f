//! `Stripe-Version`: objects are kept in the newest shape and rendered for
//! the version a request or a webhook endpoint asks for. Only the changes the
//! kavachos-stripe package reads are modelled: from 2025-03-31.basil the
//! billing period lives on subscription items and an invoice names its
//! subscription under `parent`; before it, both sit at the top level.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// The version an account created today would have: the one the official
/// `stripe` package (v23) pins.
pub const DEFAULT_API_VERSION: &str = "2026-10-28.endive";
const BASIL: &str = "2025-03-31";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion(String);

impl ApiVersion {
    pub fn parse(text: &str) -> ApiResult<Self> {
        let date = text.split_once('.').map_or(text, |(date, _)| date);
        let well_formed = date.len() == 10
            && date.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
            && text.split_once('.').is_none_or(|(_, name)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase())
            });
        if !well_formed || date < "2011-01-01" {
            return Err(ApiError::invalid_request(
                format!("Invalid Stripe API version: {text}"),
                None,
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn default_version() -> Self {
        Self(DEFAULT_API_VERSION.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn periods_on_items(&self) -> bool {
        self.0.as_str() >= BASIL
    }
}

/// A copy of `object` (and everything nested in it) in `version`'s shape.
pub fn render(object: &Value, version: &ApiVersion) -> Value {
    let mut copy = object.clone();
    if !version.periods_on_items() {
        to_legacy(&mut copy);
    }
    stamp_events(&mut copy, version);
    copy
}

/// An event says which version rendered it (also inside a list).
fn stamp_events(value: &mut Value, version: &ApiVersion) {
    if value["object"] == "event" {
        value["api_version"] = json!(version.as_str());
    } else if let Some(items) = value.get_mut("data").and_then(Value::as_array_mut) {
        items
            .iter_mut()
            .for_each(|item| stamp_events(item, version));
    }
}

fn to_legacy(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(to_legacy),
        Value::Object(map) => {
            for child in map.values_mut() {
                to_legacy(child);
            }
            match map.get("object").and_then(Value::as_str) {
                Some("subscription") => {
                    let mut start = Value::Null;
                    let mut end = Value::Null;
                    if let Some(items) = map
                        .get_mut("items")
                        .and_then(|i| i.get_mut("data"))
                        .and_then(Value::as_array_mut)
                    {
                        for item in items.iter_mut() {
                            if let Some(item) = item.as_object_mut() {
                                let item_end =
                                    item.remove("current_period_end").unwrap_or_default();
                                let item_start =
                                    item.remove("current_period_start").unwrap_or_default();
                                if item_end.as_i64() > end.as_i64() || end.is_null() {
                                    end = item_end;
                                    start = item_start;
                                }
                            }
                        }
                    }
                    map.insert("current_period_start".into(), start);
                    map.insert("current_period_end".into(), end);
                }
                Some("invoice") => {
                    let subscription = map
                        .get("parent")
                        .and_then(|p| p.get("subscription_details"))
                        .and_then(|d| d.get("subscription"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    map.remove("parent");
                    map.insert("subscription".into(), subscription);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_validated() {
        assert!(ApiVersion::parse("2025-03-31.basil").is_ok());
        assert!(ApiVersion::parse("2024-06-20").is_ok());
        assert!(ApiVersion::parse("yesterday").is_err());
        assert!(ApiVersion::parse("2025-03-31.").is_err());
    }

    #[test]
    fn periods_move_to_the_subscription_before_basil() {
        let sub = json!({"object": "subscription", "items": {"data": [
            {"object": "subscription_item", "current_period_start": 10, "current_period_end": 20}
        ]}});
        let legacy = render(&sub, &ApiVersion::parse("2024-09-30.acacia").unwrap());
        assert_eq!(legacy["current_period_end"], 20);
        assert!(legacy["items"]["data"][0]
            .get("current_period_end")
            .is_none());
        let current = render(&sub, &ApiVersion::default_version());
        assert_eq!(current["items"]["data"][0]["current_period_end"], 20);
        assert!(current.get("current_period_end").is_none());

        let invoice = json!({"object": "invoice", "parent": {"subscription_details": {"subscription": "sub_1"}}});
        let legacy = render(&invoice, &ApiVersion::parse("2024-09-30.acacia").unwrap());
        assert_eq!(legacy["subscription"], "sub_1");
        assert!(legacy.get("parent").is_none());
    }
}
