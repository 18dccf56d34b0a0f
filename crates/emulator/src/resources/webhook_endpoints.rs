//! `/v1/webhook_endpoints`: create (answers with its own `secret`, once),
//! retrieve, update, list, delete.

use serde_json::{json, Value};

use super::{merge_metadata, Call};
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, random_token};
use crate::list::Page;
use crate::store::Store;
use crate::version::ApiVersion;

fn existing(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .webhook_endpoints
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("webhook_endpoint", id))
}

fn check_url(url: &str) -> ApiResult<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ApiError::invalid_with_code(
            "url_invalid",
            "Invalid URL: URL must be an absolute http(s) URL.",
            Some("url".into()),
        ))
    }
}

pub fn new_secret() -> String {
    format!("whsec_{}", random_token(32))
}

/// A webhook endpoint object (stored by the caller, with its secret).
pub fn new_endpoint(
    url: &str,
    events: Vec<String>,
    api_version: Option<&ApiVersion>,
    now: i64,
) -> Value {
    json!({
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": api_version.map(ApiVersion::as_str),
        "application": null,
        "created": now,
        "description": null,
        "enabled_events": events,
        "livemode": false,
        "metadata": {},
        "status": "enabled",
        "url": url,
    })
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let url = p.required_str("url")?;
    let events = p.strings("enabled_events")?;
    let api_version = p.str("api_version")?.filter(|s| !s.is_empty());
    let description = p.str("description")?;
    let metadata = p.map("metadata")?;
    p.finish(&["connect"])?;
    check_url(&url)?;
    if events.is_empty() {
        return Err(ApiError::parameter_missing("enabled_events"));
    }
    let version = match api_version {
        Some(text) => Some(ApiVersion::parse(&text).map_err(|mut e| {
            e.param = Some("api_version".into());
            e
        })?),
        None => None,
    };
    let mut endpoint = new_endpoint(&url, events, version.as_ref(), store.now());
    endpoint["description"] = json!(description.filter(|d| !d.is_empty()));
    endpoint["metadata"] = merge_metadata(&json!({}), metadata);
    let secret = new_secret();
    let id = endpoint["id"].as_str().unwrap_or_default().to_owned();
    store.endpoint_secrets.insert(id, secret.clone());
    store.webhook_endpoints.insert(endpoint.clone());
    endpoint["secret"] = json!(secret);
    Ok(endpoint)
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    existing(store, call.id())
}

pub fn update(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let url = p.str("url")?.filter(|s| !s.is_empty());
    let events = p.strings("enabled_events")?;
    let disabled = p.bool("disabled")?;
    let description = p.str("description")?;
    let metadata = p.map("metadata")?;
    p.finish(&[])?;
    let mut endpoint = existing(store, call.id())?;
    if let Some(url) = url {
        check_url(&url)?;
        endpoint["url"] = json!(url);
    }
    if !events.is_empty() {
        endpoint["enabled_events"] = json!(events);
    }
    if let Some(disabled) = disabled {
        endpoint["status"] = json!(if disabled { "disabled" } else { "enabled" });
    }
    if let Some(description) = description {
        endpoint["description"] = if description.is_empty() {
            Value::Null
        } else {
            json!(description)
        };
    }
    endpoint["metadata"] = merge_metadata(&endpoint["metadata"], metadata);
    store.webhook_endpoints.insert(endpoint.clone());
    Ok(endpoint)
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let page = Page::read(call.params)?;
    call.params.finish(&[])?;
    let all: Vec<Value> = store.webhook_endpoints.newest_first().cloned().collect();
    page.list(all, "webhook_endpoint", call.path)
}

pub fn delete(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    existing(store, call.id())?;
    store.webhook_endpoints.remove(call.id());
    store.endpoint_secrets.remove(call.id());
    Ok(json!({"id": call.id(), "object": "webhook_endpoint", "deleted": true}))
}
