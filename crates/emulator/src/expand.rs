//! `expand[]`: replaces ids at the named paths (`latest_invoice`,
//! `data.customer`, `latest_invoice.customer`) with the objects they name.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use crate::version::{render, ApiVersion};

pub fn expand(
    store: &Store,
    value: &mut Value,
    paths: &[String],
    version: &ApiVersion,
) -> ApiResult<()> {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        expand_at(store, value, &segments, version, path)?;
    }
    Ok(())
}

fn expand_at(
    store: &Store,
    value: &mut Value,
    segments: &[&str],
    version: &ApiVersion,
    path: &str,
) -> ApiResult<()> {
    let cannot = || {
        ApiError::invalid_request(
            format!("This property cannot be expanded ({path})."),
            Some("expand".into()),
        )
    };
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if let Value::Array(items) = value {
        for item in items {
            expand_at(store, item, segments, version, path)?;
        }
        return Ok(());
    }
    if *first == "line_items"
        && value["object"] == "checkout.session"
        && value.get("line_items").is_none()
    {
        let id = value["id"].as_str().unwrap_or_default();
        value["line_items"] = checkout_line_items(store, id);
    }
    let field = value.get_mut(*first).ok_or_else(cannot)?;
    if *first == "data" && field.is_array() {
        return expand_at(store, field, rest, version, path);
    }
    if let Some(id) = field.as_str() {
        let found = store.find_any(id).ok_or_else(cannot)?;
        *field = render(found, version);
    } else if !field.is_object() && !field.is_null() {
        return Err(cannot());
    }
    if !rest.is_empty() && field.is_object() {
        expand_at(store, field, rest, version, path)?;
    }
    Ok(())
}

/// A Checkout session's `line_items`, as Stripe expands them.
pub fn checkout_line_items(store: &Store, session: &str) -> Value {
    let items = store
        .checkout_terms
        .get(session)
        .map(|t| t.items.clone())
        .unwrap_or_default();
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(index, (price, quantity))| {
            let amount = price["unit_amount"].as_i64().unwrap_or_default() * quantity;
            serde_json::json!({
                "id": format!("li_{}_{index}", session.trim_start_matches("cs_test_").get(..16).unwrap_or_default()),
                "object": "item",
                "amount_subtotal": amount,
                "amount_total": amount,
                "currency": price["currency"],
                "description": price["nickname"],
                "price": price,
                "quantity": quantity,
            })
        })
        .collect();
    serde_json::json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "url": format!("/v1/checkout/sessions/{session}/line_items"),
    })
}
