//! The API's resources, one file each. A handler reads its parameters,
//! calls `Params::finish` (which refuses anything it did not read), and only
//! then changes the store; it returns the object in the newest shape.

pub mod checkout_sessions;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod payment_methods;
pub mod portal_sessions;
pub mod prices;
pub mod products;
pub mod subscriptions;
pub mod test_clocks;
pub mod webhook_endpoints;

use serde_json::{Map, Value};

use crate::error::ApiResult;
use crate::params::Params;
use crate::store::Cause;
use crate::version::ApiVersion;

/// One API call as a handler sees it.
pub struct Call<'a> {
    pub params: &'a Params,
    pub version: &'a ApiVersion,
    pub cause: Cause,
    /// The id in the URL, if any (`/v1/customers/{id}`).
    pub id: Option<&'a str>,
    /// The path without the query, for list objects' `url`.
    pub path: &'a str,
}

impl Call<'_> {
    pub fn id(&self) -> &str {
        self.id.unwrap_or_default()
    }
}

/// `metadata[k]=v` applied to an object's metadata: an empty value removes a
/// key, `metadata=` removes all.
pub fn merge_metadata(current: &Value, update: Option<Vec<(String, String)>>) -> Value {
    let mut metadata: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    match update {
        None => {}
        Some(entries) if entries.is_empty() => metadata.clear(),
        Some(entries) => {
            for (key, value) in entries {
                if value.is_empty() {
                    metadata.remove(&key);
                } else {
                    metadata.insert(key, Value::String(value));
                }
            }
        }
    }
    Value::Object(metadata)
}

/// `created[gte]`-style filters (or `created=<t>`).
#[derive(Debug, Default)]
pub struct CreatedRange {
    exact: Option<i64>,
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl CreatedRange {
    pub fn contains(&self, object: &Value) -> bool {
        let created = object["created"].as_i64().unwrap_or_default();
        self.exact.is_none_or(|t| created == t)
            && self.gt.is_none_or(|t| created > t)
            && self.gte.is_none_or(|t| created >= t)
            && self.lt.is_none_or(|t| created < t)
            && self.lte.is_none_or(|t| created <= t)
    }
}

pub fn created_filter(params: &Params) -> ApiResult<CreatedRange> {
    let ranged = ["created[gt]", "created[gte]", "created[lt]", "created[lte]"]
        .iter()
        .any(|name| params.has(name));
    Ok(CreatedRange {
        exact: if ranged { None } else { params.int("created")? },
        gt: params.int("created[gt]")?,
        gte: params.int("created[gte]")?,
        lt: params.int("created[lt]")?,
        lte: params.int("created[lte]")?,
    })
}

/// The largest quantity the emulator takes (keeps amounts far from overflow).
pub const MAX_QUANTITY: i64 = 999_999;

/// One `items[n]` entry as sent (subscriptions and previews).
pub struct SentItem {
    pub id: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<i64>,
    pub deleted: bool,
}

/// Reads `name[n][id|price|quantity|deleted]`.
pub fn sent_items(params: &Params, name: &str) -> ApiResult<Vec<SentItem>> {
    let mut items = Vec::new();
    for entry in params.list(name) {
        let quantity = params.int(&format!("{entry}[quantity]"))?;
        if quantity.is_some_and(|q| !(0..=MAX_QUANTITY).contains(&q)) {
            return Err(crate::error::ApiError::invalid_value(
                &format!("{entry}[quantity]"),
                "This value must be greater than or equal to 0 and less than or equal to 999999.",
            ));
        }
        items.push(SentItem {
            id: params
                .str(&format!("{entry}[id]"))?
                .filter(|s| !s.is_empty()),
            price: params
                .str(&format!("{entry}[price]"))?
                .filter(|s| !s.is_empty()),
            quantity,
            deleted: params.bool(&format!("{entry}[deleted]"))?.unwrap_or(false),
        });
    }
    Ok(items)
}

pub type Handler = fn(&mut crate::store::Store, &Call<'_>) -> ApiResult<Value>;
