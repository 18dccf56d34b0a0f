//! What Stripe Billing does between API calls: subscriptions and their items,
//! periods, invoices, prorations, payments.

pub mod checkout_completion;
pub mod invoicing;
pub mod payments;
pub mod periods;
pub mod schedule;
pub mod subscription_object;
pub mod subscription_start;
pub mod subscription_update;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// A price named in a request body.
pub fn price_param(store: &Store, id: &str, param: &str) -> ApiResult<Value> {
    store
        .prices
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("price", id, param))
}

/// A customer named in a request body (deleted customers count as missing).
pub fn customer_param(store: &Store, id: &str, param: &str) -> ApiResult<Value> {
    store
        .customers
        .get(id)
        .filter(|c| c["deleted"] != true)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("customer", id, param))
}

/// A recurring price, for subscriptions.
pub fn recurring_price(store: &Store, id: &str, param: &str) -> ApiResult<Value> {
    let price = price_param(store, id, param)?;
    if price["recurring"].is_null() {
        return Err(ApiError::invalid_request(
            format!("The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`: {id}"),
            Some(param.to_owned()),
        ));
    }
    Ok(price)
}
