//! `/v1/prices`: create, retrieve, update, list (by lookup key, product...).

use serde_json::{json, Value};

use super::products::new_product;
use super::{created_filter, merge_metadata, Call};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::list::Page;
use crate::store::{Cause, Store};

const NOT_EMULATED: &[&str] = &[
    "billing_scheme",
    "currency_options",
    "custom_unit_amount",
    "tax_behavior",
    "tiers",
    "tiers_mode",
    "transform_quantity",
    "unit_amount_decimal",
    "recurring[usage_type]",
    "recurring[meter]",
    "recurring[trial_period_days]",
    "product_data[metadata]",
    "product_data[tax_code]",
    "product_data[unit_label]",
    "product_data[statement_descriptor]",
    "product_data[active]",
    "product_data[id]",
];

const INTERVALS: &[&str] = &["day", "week", "month", "year"];
/// Stripe's largest unit amount (8 digits).
const MAX_UNIT_AMOUNT: i64 = 99_999_999;

/// What a price is made of.
pub struct NewPrice {
    pub id: Option<String>,
    pub product: String,
    pub currency: String,
    pub unit_amount: i64,
    /// `(interval, interval_count)`; `None` for a one-time price.
    pub recurring: Option<(String, i64)>,
    pub lookup_key: Option<String>,
    pub nickname: Option<String>,
}

pub fn new_price(spec: NewPrice, now: i64) -> Value {
    let recurring = spec
        .recurring
        .as_ref()
        .map_or(Value::Null, |(interval, count)| {
            json!({
                "interval": interval,
                "interval_count": count,
                "meter": null,
                "trial_period_days": null,
                "usage_type": "licensed",
            })
        });
    json!({
        "id": spec.id.unwrap_or_else(|| new_id("price")),
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": spec.currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": spec.lookup_key,
        "metadata": {},
        "nickname": spec.nickname,
        "product": spec.product,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": if spec.recurring.is_some() { "recurring" } else { "one_time" },
        "unit_amount": spec.unit_amount,
        "unit_amount_decimal": spec.unit_amount.to_string(),
    })
}

fn holder_of_lookup_key(store: &Store, key: &str) -> Option<String> {
    store
        .prices
        .oldest_first()
        .find(|p| p["lookup_key"] == key)
        .and_then(|p| p["id"].as_str().map(str::to_owned))
}

/// Moves a lookup key off the price holding it (`transfer_lookup_key`).
fn take_lookup_key(store: &mut Store, key: &str, transfer: bool, cause: &Cause) -> ApiResult<()> {
    if let Some(holder) = holder_of_lookup_key(store, key) {
        if !transfer {
            return Err(ApiError::invalid_request(
                format!("A price (`{holder}`) already uses that lookup key."),
                Some("lookup_key".into()),
            ));
        }
        if let Some(before) = store.prices.get(&holder).cloned() {
            let mut after = before.clone();
            after["lookup_key"] = Value::Null;
            store.prices.insert(after.clone());
            store.emit(
                "price.updated",
                &after,
                Some(Store::changed_fields(&before, &after)),
                cause,
            );
        }
    }
    Ok(())
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let currency = p.required_str("currency")?.to_lowercase();
    let unit_amount = p.int("unit_amount")?;
    let product = p.str("product")?.filter(|s| !s.is_empty());
    let product_name = p.str("product_data[name]")?.filter(|s| !s.is_empty());
    let interval = p.str("recurring[interval]")?;
    let interval_count = p.int("recurring[interval_count]")?;
    let lookup_key = p.str("lookup_key")?.filter(|s| !s.is_empty());
    let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
    let nickname = p.str("nickname")?;
    let metadata = p.map("metadata")?;
    let active = p.bool("active")?;
    p.finish(NOT_EMULATED)?;
    let unit_amount = unit_amount.ok_or_else(|| ApiError::parameter_missing("unit_amount"))?;
    if !(0..=MAX_UNIT_AMOUNT).contains(&unit_amount) {
        return Err(ApiError::invalid_value(
            "unit_amount",
            "This value must be greater than or equal to 0 and less than or equal to 99999999.",
        ));
    }
    let recurring = match (interval, interval_count) {
        (None, None) => None,
        (Some(interval), count) if INTERVALS.contains(&interval.as_str()) => {
            let count = count.unwrap_or(1);
            // Stripe's longest interval: three years.
            let most = match interval.as_str() {
                "day" => 1095,
                "week" => 156,
                "month" => 36,
                _ => 3,
            };
            if !(1..=most).contains(&count) {
                return Err(ApiError::invalid_value(
                    "recurring[interval_count]",
                    "Invalid recurring[interval_count]: the maximum interval is three years (3 years, 36 months, 156 weeks or 1095 days).",
                ));
            }
            Some((interval, count))
        }
        (Some(interval), _) => {
            return Err(ApiError::invalid_value(
                "recurring[interval]",
                format!("Invalid recurring[interval]: must be one of day, week, month, or year (got {interval})"),
            ))
        }
        (None, Some(_)) => return Err(ApiError::parameter_missing("recurring[interval]")),
    };
    let product = match (product, product_name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "You may only specify one of these parameters: product, product_data.",
                Some("product".into()),
            ))
        }
        (Some(id), None) => {
            if store.products.get(&id).is_none() {
                return Err(ApiError::no_such_param("product", &id, "product"));
            }
            id
        }
        (None, Some(name)) => {
            let product = new_product(None, &name, None, store.now());
            let id = product["id"].as_str().unwrap_or_default().to_owned();
            store.products.insert(product.clone());
            store.emit("product.created", &product, None, &call.cause);
            id
        }
        (None, None) => return Err(ApiError::parameter_missing("product")),
    };
    if let Some(key) = &lookup_key {
        take_lookup_key(store, key, transfer, &call.cause)?;
    }
    let mut price = new_price(
        NewPrice {
            id: None,
            product,
            currency,
            unit_amount,
            recurring,
            lookup_key,
            nickname: nickname.filter(|n| !n.is_empty()),
        },
        store.now(),
    );
    price["active"] = json!(active.unwrap_or(true));
    price["metadata"] = merge_metadata(&json!({}), metadata);
    store.prices.insert(price.clone());
    store.emit("price.created", &price, None, &call.cause);
    Ok(price)
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    store
        .prices
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("price", call.id()))
}

pub fn update(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let active = p.bool("active")?;
    let nickname = p.str("nickname")?;
    let metadata = p.map("metadata")?;
    let lookup_key = p.str("lookup_key")?;
    let transfer = p.bool("transfer_lookup_key")?.unwrap_or(false);
    p.finish(&["currency_options", "tax_behavior"])?;
    let before = store
        .prices
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("price", call.id()))?;
    let mut after = before.clone();
    if let Some(active) = active {
        after["active"] = json!(active);
    }
    if let Some(nickname) = nickname {
        after["nickname"] = if nickname.is_empty() {
            Value::Null
        } else {
            json!(nickname)
        };
    }
    after["metadata"] = merge_metadata(&before["metadata"], metadata);
    if let Some(key) = lookup_key {
        if key.is_empty() {
            after["lookup_key"] = Value::Null;
        } else if before["lookup_key"] != key.as_str() {
            take_lookup_key(store, &key, transfer, &call.cause)?;
            after["lookup_key"] = json!(key);
        }
    }
    if after != before {
        store.prices.insert(after.clone());
        store.emit(
            "price.updated",
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
    let product = p.str("product")?;
    let currency = p.str("currency")?;
    let kind = p.str("type")?;
    let lookup_keys = p.strings("lookup_keys")?;
    let interval = p.str("recurring[interval]")?;
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&["recurring[meter]", "recurring[usage_type]"])?;
    let matching: Vec<Value> = store
        .prices
        .newest_first()
        .filter(|o| active.is_none_or(|a| o["active"] == a))
        .filter(|o| product.as_deref().is_none_or(|v| o["product"] == v))
        .filter(|o| currency.as_deref().is_none_or(|v| o["currency"] == v))
        .filter(|o| kind.as_deref().is_none_or(|v| o["type"] == v))
        .filter(|o| {
            interval
                .as_deref()
                .is_none_or(|v| o["recurring"]["interval"] == v)
        })
        .filter(|o| {
            lookup_keys.is_empty() || lookup_keys.iter().any(|k| o["lookup_key"] == k.as_str())
        })
        .filter(|o| created.contains(o))
        .cloned()
        .collect();
    page.list(matching, "price", call.path)
}
