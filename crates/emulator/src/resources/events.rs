//! `/v1/events`: retrieve, list (by `type` with a `*` wildcard or `types[]`,
//! `created`, `delivery_success`), newest first, the last 30 days.

use serde_json::Value;

use super::{created_filter, Call};
use crate::error::{ApiError, ApiResult};
use crate::list::Page;
use crate::store::Store;

const RETENTION_SECONDS: i64 = 30 * 86_400;

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    store
        .events
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("event", call.id()))
}

fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let kind = p.str("type")?.filter(|s| !s.is_empty());
    let types = p.strings("types")?;
    let delivery_success = p.bool("delivery_success")?;
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&[])?;
    if kind.is_some() && !types.is_empty() {
        return Err(ApiError::invalid_request(
            "You may only specify one of these parameters: type, types.",
            Some("types".into()),
        ));
    }
    if types.len() > 20 {
        return Err(ApiError::invalid_value(
            "types",
            "You can pass at most 20 types.",
        ));
    }
    let oldest = store.now() - RETENTION_SECONDS;
    let delivered = |event: &Value| {
        let id = event["id"].as_str().unwrap_or_default();
        let attempts: Vec<_> = store
            .deliveries
            .iter()
            .filter(|a| a.event_id == id)
            .collect();
        !attempts.is_empty() && {
            let mut endpoints: Vec<&str> =
                attempts.iter().map(|a| a.endpoint_id.as_str()).collect();
            endpoints.dedup();
            endpoints
                .iter()
                .all(|e| attempts.iter().any(|a| a.endpoint_id == *e && a.succeeded))
        }
    };
    let matching: Vec<Value> = store
        .events
        .newest_first()
        .filter(|e| e["created"].as_i64().unwrap_or_default() >= oldest)
        .filter(|e| {
            let event_type = e["type"].as_str().unwrap_or_default();
            kind.as_deref().is_none_or(|k| type_matches(k, event_type))
                && (types.is_empty() || types.iter().any(|t| type_matches(t, event_type)))
        })
        .filter(|e| delivery_success.is_none_or(|wanted| delivered(e) == wanted))
        .filter(|e| created.contains(e))
        .cloned()
        .collect();
    page.list(matching, "event", call.path)
}
