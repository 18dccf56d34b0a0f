//! `/v1/customers`: create, retrieve, update, delete, list (by email).

use serde_json::{json, Value};

use super::payment_methods::{check_attachable, resolve_payment_method};
use super::subscriptions::{change_subscription, SubscriptionChange};
use super::{created_filter, merge_metadata, Call};
use crate::billing::subscription_object::has_ended;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, random_token};
use crate::list::Page;
use crate::store::{Cause, Store};

const NOT_EMULATED: &[&str] = &[
    "address",
    "shipping",
    "tax",
    "tax_exempt",
    "tax_id_data",
    "preferred_locales",
    "source",
    "coupon",
    "promotion_code",
    "cash_balance",
    "invoice_prefix",
    "next_invoice_sequence",
    "invoice_settings[custom_fields]",
    "invoice_settings[footer]",
    "invoice_settings[rendering_options]",
    "default_source",
];

/// Keeps balances where invoice arithmetic cannot overflow.
fn check_balance(balance: i64) -> ApiResult<()> {
    if !(-99_999_999_999..=99_999_999_999).contains(&balance) {
        return Err(ApiError::invalid_value(
            "balance",
            "This value must be between -99999999999 and 99999999999.",
        ));
    }
    Ok(())
}

fn live(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .customers
        .get(id)
        .filter(|c| c["deleted"] != true)
        .cloned()
        .ok_or_else(|| ApiError::no_such("customer", id))
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let email = p.str("email")?;
    let name = p.str("name")?;
    let description = p.str("description")?;
    let phone = p.str("phone")?;
    let metadata = p.map("metadata")?;
    let payment_method = p.str("payment_method")?.filter(|s| !s.is_empty());
    let default_pm = p
        .str("invoice_settings[default_payment_method]")?
        .filter(|s| !s.is_empty());
    let balance = p.int("balance")?.unwrap_or_default();
    let test_clock = p.str("test_clock")?.filter(|s| !s.is_empty());
    p.finish(NOT_EMULATED)?;
    check_balance(balance)?;
    if let Some(clock) = &test_clock {
        if store.test_clocks.get(clock).is_none() {
            return Err(ApiError::no_such_param(
                "test_helpers.test_clock",
                clock,
                "test_clock",
            ));
        }
    }
    if default_pm.is_some() && default_pm != payment_method {
        return Err(ApiError::invalid_request(
            "On a new customer, invoice_settings[default_payment_method] must name the payment_method being attached (the same id or test token).",
            Some("invoice_settings[default_payment_method]".into()),
        ));
    }
    if let Some(pm) = &payment_method {
        check_attachable(store, pm, "payment_method")?;
    }
    let id = new_id("cus");
    let mut customer = new_customer(&id, email.as_deref(), store.now());
    customer["balance"] = json!(balance);
    customer["description"] = json!(description);
    customer["metadata"] = merge_metadata(&json!({}), metadata);
    customer["name"] = json!(name);
    customer["phone"] = json!(phone);
    customer["test_clock"] = json!(test_clock);
    store.customers.insert(customer.clone());
    store.emit("customer.created", &customer, None, &call.cause);
    if let Some(pm) = payment_method {
        let attached = resolve_payment_method(store, &pm, &id, "payment_method", &call.cause)?;
        if default_pm.is_some() {
            set_default_card(store, &id, &attached, &call.cause);
        }
    }
    live(store, &id)
}

/// A customer object with nothing but an email.
pub fn new_customer(id: &str, email: Option<&str>, now: i64) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": now,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": email,
        "invoice_prefix": random_token(8).to_uppercase(),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null,
        },
        "livemode": false,
        "metadata": {},
        "name": null,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    })
}

/// A new default card: on the customer, and on its live subscriptions that
/// name a card of their own (Stripe charges those first). Used by customer
/// creation, the portal's card update and triggers.
pub fn set_default_card(store: &mut Store, customer: &str, pm: &str, cause: &Cause) {
    let Some(before) = store.customers.get(customer).cloned() else {
        return;
    };
    let mut after = before.clone();
    after["invoice_settings"]["default_payment_method"] = json!(pm);
    store.customers.insert(after.clone());
    store.emit(
        "customer.updated",
        &after,
        Some(Store::changed_fields(&before, &after)),
        cause,
    );
    let live: Vec<String> = store
        .subscriptions
        .oldest_first()
        .filter(|s| {
            s["customer"] == customer && !has_ended(s) && !s["default_payment_method"].is_null()
        })
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    for id in live {
        let mut change = SubscriptionChange::none();
        change.default_payment_method = Some(pm.to_owned());
        let _ = change_subscription(store, &id, change, cause);
    }
}

/// A customer made outside the API (Checkout, triggers): stored, with
/// `customer.created`.
pub fn add_customer(
    store: &mut Store,
    email: Option<&str>,
    metadata: serde_json::Map<String, Value>,
    cause: &Cause,
) -> String {
    let id = new_id("cus");
    let mut customer = new_customer(&id, email, store.now());
    customer["metadata"] = Value::Object(metadata);
    store.customers.insert(customer.clone());
    store.emit("customer.created", &customer, None, cause);
    id
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    match store.customers.get(call.id()) {
        // A deleted customer can still be retrieved, as a tombstone.
        Some(c) if c["deleted"] == true => {
            Ok(json!({"id": c["id"], "object": "customer", "deleted": true}))
        }
        Some(c) => Ok(c.clone()),
        None => Err(ApiError::no_such("customer", call.id())),
    }
}

pub fn update(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let email = p.str("email")?;
    let name = p.str("name")?;
    let description = p.str("description")?;
    let phone = p.str("phone")?;
    let metadata = p.map("metadata")?;
    let default_pm = p.str("invoice_settings[default_payment_method]")?;
    let balance = p.int("balance")?;
    p.finish(NOT_EMULATED)?;
    let before = live(store, call.id())?;
    let mut after = before.clone();
    let blank_is_null = |v: String| if v.is_empty() { Value::Null } else { json!(v) };
    for (field, value) in [
        ("email", email),
        ("name", name),
        ("description", description),
        ("phone", phone),
    ] {
        if let Some(value) = value {
            after[field] = blank_is_null(value);
        }
    }
    if let Some(balance) = balance {
        check_balance(balance)?;
        after["balance"] = json!(balance);
    }
    after["metadata"] = merge_metadata(&before["metadata"], metadata);
    if let Some(pm) = default_pm {
        if pm.is_empty() {
            after["invoice_settings"]["default_payment_method"] = Value::Null;
        } else {
            let id = resolve_payment_method(
                store,
                &pm,
                call.id(),
                "invoice_settings[default_payment_method]",
                &call.cause,
            )?;
            after["invoice_settings"]["default_payment_method"] = json!(id);
        }
    }
    if after != before {
        store.customers.insert(after.clone());
        store.emit(
            "customer.updated",
            &after,
            Some(Store::changed_fields(&before, &after)),
            &call.cause,
        );
    }
    Ok(after)
}

/// Deleting a customer cancels its subscriptions at once, as Stripe does.
pub fn delete(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    delete_customer(store, call.id(), &call.cause)
}

pub fn delete_customer(store: &mut Store, id: &str, cause: &Cause) -> ApiResult<Value> {
    let customer = live(store, id)?;
    let now = store.now();
    let subscriptions: Vec<Value> = store
        .subscriptions
        .oldest_first()
        .filter(|s| s["customer"] == id && !has_ended(s))
        .cloned()
        .collect();
    for mut subscription in subscriptions {
        subscription["status"] = json!("canceled");
        subscription["canceled_at"] = json!(now);
        subscription["ended_at"] = json!(now);
        subscription["cancellation_details"]["reason"] = json!("cancellation_requested");
        store.subscriptions.insert(subscription.clone());
        store.emit("customer.subscription.deleted", &subscription, None, cause);
    }
    let mut tombstone = customer.clone();
    tombstone["deleted"] = json!(true);
    store.customers.insert(tombstone);
    store.emit("customer.deleted", &customer, None, cause);
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let email = p.str("email")?;
    let test_clock = p.str("test_clock")?.filter(|s| !s.is_empty());
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&[])?;
    let matching: Vec<Value> = store
        .customers
        .newest_first()
        .filter(|c| c["deleted"] != true)
        .filter(|c| email.as_deref().is_none_or(|e| c["email"] == e))
        // Stripe lists a test clock's customers only when asked for that clock.
        .filter(|c| match &test_clock {
            Some(clock) => c["test_clock"] == clock.as_str(),
            None => c["test_clock"].is_null(),
        })
        .filter(|c| created.contains(c))
        .cloned()
        .collect();
    page.list(matching, "customer", call.path)
}
