//! Payment methods: Stripe's test tokens (`pm_card_visa`...) become cards
//! attached to a customer. `GET /v1/payment_methods/:id`,
//! `POST /v1/payment_methods/:id/attach`, and lists of a customer's cards.

use serde_json::{json, Value};

use super::Call;
use crate::cards::{card_by_token, new_payment_method, TestCard};
use crate::error::{ApiError, ApiResult};
use crate::list::Page;
use crate::store::{Cause, Store};

/// The id of a usable payment method for `customer`: a test token makes a
/// new card, an existing card is attached if it is not yet. Emits
/// `payment_method.attached` when something gets attached.
pub fn resolve_payment_method(
    store: &mut Store,
    id_or_token: &str,
    customer: &str,
    param: &str,
    cause: &Cause,
) -> ApiResult<String> {
    if let Some(card) = card_by_token(id_or_token) {
        return attach_new_card(store, card, customer, cause);
    }
    let existing = store
        .payment_methods
        .get(id_or_token)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("PaymentMethod", id_or_token, param))?;
    match existing["customer"].as_str() {
        Some(owner) if owner == customer => Ok(id_or_token.to_owned()),
        Some(_) => Err(ApiError::invalid_request(
            "The payment method you provided has already been attached to a customer.",
            Some(param.to_owned()),
        )),
        None => {
            let mut attached = existing;
            attached["customer"] = json!(customer);
            store.payment_methods.insert(attached.clone());
            store.emit("payment_method.attached", &attached, None, cause);
            Ok(id_or_token.to_owned())
        }
    }
}

/// A new card from a test card, attached to `customer`.
pub fn attach_new_card(
    store: &mut Store,
    card: &TestCard,
    customer: &str,
    cause: &Cause,
) -> ApiResult<String> {
    let payment_method = new_payment_method(card, Some(customer), store.now())?;
    let id = payment_method["id"].as_str().unwrap_or_default().to_owned();
    store.card_behaviours.insert(id.clone(), card.behaviour);
    store.payment_methods.insert(payment_method.clone());
    store.emit("payment_method.attached", &payment_method, None, cause);
    Ok(id)
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    store
        .payment_methods
        .get(call.id())
        .cloned()
        .ok_or_else(|| ApiError::no_such("PaymentMethod", call.id()))
}

pub fn attach(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let customer = call.params.required_str("customer")?;
    call.params.finish(&[])?;
    crate::billing::customer_param(store, &customer, "customer")?;
    let id = resolve_payment_method(store, call.id(), &customer, "payment_method", &call.cause)
        .map_err(|e| match e.code.as_deref() {
            Some("resource_missing") => ApiError::no_such("PaymentMethod", call.id()),
            _ => e,
        })?;
    store
        .payment_methods
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("PaymentMethod", &id))
}

/// Refuses a payment method before anything else changes: an unknown id, or a
/// test card that Stripe refuses to attach.
pub fn check_attachable(store: &Store, id_or_token: &str, param: &str) -> ApiResult<()> {
    match card_by_token(id_or_token) {
        Some(card) => new_payment_method(card, None, 0).map(|_| ()),
        None if store.payment_methods.get(id_or_token).is_some() => Ok(()),
        None => Err(ApiError::no_such_param("PaymentMethod", id_or_token, param)),
    }
}

/// `GET /v1/payment_methods?customer=...`: the cards attached to a customer
/// (every card without one), newest first.
pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let customer = call.params.str("customer")?.filter(|s| !s.is_empty());
    list_cards(store, call, customer)
}

/// `GET /v1/customers/:id/payment_methods`.
pub fn list_for_customer(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    list_cards(store, call, Some(call.id().to_owned()))
}

fn list_cards(store: &Store, call: &Call<'_>, customer: Option<String>) -> ApiResult<Value> {
    let p = call.params;
    let kind = p.str("type")?;
    let page = Page::read(p)?;
    p.finish(&["allow_redisplay", "customer_account"])?;
    if let Some(customer) = &customer {
        crate::billing::customer_param(store, customer, "customer")?;
    }
    // Every payment method here is a card: another type lists nothing.
    let matching: Vec<Value> = store
        .payment_methods
        .newest_first()
        .filter(|m| kind.as_deref().is_none_or(|k| m["type"] == k))
        .filter(|m| customer.as_deref().is_none_or(|c| m["customer"] == c))
        .cloned()
        .collect();
    page.list(matching, "payment_method", call.path)
}
