//! `/v1/products`: create, retrieve, update, list.

use serde_json::{json, Value};

use super::{created_filter, merge_metadata, Call};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::list::Page;
use crate::store::Store;

const NOT_EMULATED: &[&str] = &[
    "default_price_data",
    "images",
    "marketing_features",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
    "default_price",
];

pub fn new_product(id: Option<String>, name: &str, description: Option<String>, now: i64) -> Value {
    json!({
        "id": id.unwrap_or_else(|| new_id("prod")),
        "object": "product",
        "active": true,
        "created": now,
        "default_price": null,
        "description": description,
        "images": [],
        "livemode": false,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": null,
        "shippable": null,
        "statement_descriptor": null,
        "tax_code": null,
        "type": "service",
        "unit_label": null,
        "updated": now,
        "url": null,
    })
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let id = p.str("id")?.filter(|s| !s.is_empty());
    let name = p.required_str("name")?;
    let active = p.bool("active")?;
    let description = p.str("description")?;
    let metadata = p.map("metadata")?;
    p.finish(NOT_EMULATED)?;
    if let Some(id) = &id {
        if store.products.get(id).is_some() {
            return Err(ApiError::invalid_with_code(
                "resource_already_exists",
                format!("Product already exists: {id}"),
                Some("id".into()),
            ));
        }
    }
    let mut product = new_product(id, &name, description, store.now());
    product["active"] = json!(active.unwrap_or(true));
    product["metadata"] = merge_metadata(&json!({}), metadata);
    store.products.insert(product.clone());
    store.emit("product.created", &product, None, &call.cause);
    Ok(product)
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    store
        .products
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("product", call.id()))
}

pub fn update(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let name = p.str("name")?;
    let active = p.bool("active")?;
    let description = p.str("description")?;
    let metadata = p.map("metadata")?;
    p.finish(NOT_EMULATED)?;
    let before = store
        .products
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("product", call.id()))?;
    let mut after = before.clone();
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        after["name"] = json!(name);
    }
    if let Some(active) = active {
        after["active"] = json!(active);
    }
    if let Some(description) = description {
        after["description"] = if description.is_empty() {
            Value::Null
        } else {
            json!(description)
        };
    }
    after["metadata"] = merge_metadata(&before["metadata"], metadata);
    if after != before {
        after["updated"] = json!(store.now());
        store.products.insert(after.clone());
        store.emit(
            "product.updated",
            &after,
            Some(Store::changed_fields(&before, &after)),
            &call.cause,
        );
    }
    Ok(after)
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let active = p.bool("active")?;
    let ids = p.strings("ids")?;
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&["shippable", "url"])?;
    let matching: Vec<Value> = store
        .products
        .newest_first()
        .filter(|o| active.is_none_or(|a| o["active"] == a))
        .filter(|o| ids.is_empty() || ids.iter().any(|id| o["id"] == id.as_str()))
        .filter(|o| created.contains(o))
        .cloned()
        .collect();
    page.list(matching, "product", call.path)
}
