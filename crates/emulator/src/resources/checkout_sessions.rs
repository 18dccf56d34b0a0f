//! `/v1/checkout/sessions`: create (subscription, payment and setup modes),
//! retrieve, list, expire. Paying happens on the session's `url`.

use serde_json::{json, Value};

use super::{created_filter, merge_metadata, Call};
use crate::billing::{customer_param, price_param};
use crate::error::{ApiError, ApiResult};
use crate::list::Page;
use crate::store::{Cause, CheckoutTerms, Store};

const NOT_EMULATED: &[&str] = &[
    "adaptive_pricing",
    "after_expiration",
    "automatic_tax",
    "billing_address_collection",
    "consent_collection",
    "custom_fields",
    "custom_text",
    "customer_creation",
    "customer_update",
    "discounts",
    "invoice_creation",
    "line_items[*][price_data]",
    "line_items[*][adjustable_quantity]",
    "line_items[*][dynamic_tax_rates]",
    "line_items[*][tax_rates]",
    "optional_items",
    "payment_intent_data",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_options",
    "phone_number_collection",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "setup_intent_data",
    "shipping_address_collection",
    "shipping_options",
    "submit_type",
    "subscription_data[application_fee_percent]",
    "subscription_data[billing_cycle_anchor]",
    "subscription_data[billing_mode]",
    "subscription_data[default_tax_rates]",
    "subscription_data[description]",
    "subscription_data[invoice_settings]",
    "subscription_data[on_behalf_of]",
    "subscription_data[proration_behavior]",
    "subscription_data[transfer_data]",
    "subscription_data[trial_end]",
    "subscription_data[trial_settings]",
    "tax_id_collection",
    "ui_mode",
];

fn existing(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .checkout_sessions
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("checkout.session", id))
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let mode = p.required_str("mode")?;
    let customer = p.str("customer")?.filter(|s| !s.is_empty());
    let customer_email = p.str("customer_email")?.filter(|s| !s.is_empty());
    let client_reference_id = p.str("client_reference_id")?.filter(|s| !s.is_empty());
    let success_url = p.str("success_url")?.filter(|s| !s.is_empty());
    let cancel_url = p.str("cancel_url")?.filter(|s| !s.is_empty());
    let metadata = p.map("metadata")?;
    let trial_days = p.int("subscription_data[trial_period_days]")?;
    let subscription_metadata = p.map("subscription_data[metadata]")?;
    let allow_promotion_codes = p.bool("allow_promotion_codes")?;
    let locale = p.str("locale")?;
    let expires_at = p.int("expires_at")?;
    let method_types = p.strings("payment_method_types")?;
    let currency = p.str("currency")?.filter(|s| !s.is_empty());
    let mut entries = Vec::new();
    for entry in p.list("line_items") {
        let price = p.str(&format!("{entry}[price]"))?.filter(|s| !s.is_empty());
        let quantity = p.int(&format!("{entry}[quantity]"))?;
        entries.push((entry, price, quantity));
    }
    p.finish(NOT_EMULATED)?;
    if !["subscription", "payment", "setup"].contains(&mode.as_str()) {
        return Err(ApiError::invalid_value(
            "mode",
            format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})"),
        ));
    }
    if method_types.iter().any(|t| t != "card") {
        return Err(ApiError::parameter_not_emulated("payment_method_types"));
    }
    if customer.is_some() && customer_email.is_some() {
        return Err(ApiError::invalid_request(
            "You may only specify one of these parameters: customer, customer_email.",
            Some("customer_email".into()),
        ));
    }
    for (name, url) in [("success_url", &success_url), ("cancel_url", &cancel_url)] {
        if let Some(url) = url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::invalid_with_code(
                    "url_invalid",
                    "Not a valid URL",
                    Some(name.to_owned()),
                ));
            }
        }
    }
    let customer_object = match &customer {
        Some(id) => Some(customer_param(store, id, "customer")?),
        None => None,
    };
    let mut items = Vec::new();
    for (entry, price, quantity) in entries {
        let price_param_name = format!("{entry}[price]");
        let price_id = price.ok_or_else(|| ApiError::parameter_missing(&price_param_name))?;
        let price = price_param(store, &price_id, &price_param_name)?;
        let recurring = !price["recurring"].is_null();
        if mode == "payment" && recurring {
            return Err(ApiError::invalid_request(
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
                Some(price_param_name),
            ));
        }
        if mode == "subscription" && !recurring {
            return Err(ApiError::invalid_request(
                "You must specify at least one recurring price in `subscription` mode when using prices.",
                Some(price_param_name),
            ));
        }
        let quantity = quantity.unwrap_or(1);
        if quantity < 1 {
            return Err(ApiError::invalid_value(
                &format!("{entry}[quantity]"),
                "This value must be greater than or equal to 1.",
            ));
        }
        items.push((price, quantity));
    }
    if let Some(currency) = &currency {
        // Stripe takes it in lowercase or upper and answers in lowercase.
        let lower = currency.to_ascii_lowercase();
        if lower.len() != 3 || !lower.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ApiError::invalid_value(
                "currency",
                format!("Invalid currency: {currency}."),
            ));
        }
        if let Some((price, _)) = items
            .iter()
            .find(|(price, _)| price["currency"] != lower.as_str())
        {
            return Err(ApiError::invalid_request(
                format!(
                    "The price `{}` does not support the currency `{lower}`; every line item must be in the session's currency.",
                    price["id"].as_str().unwrap_or_default()
                ),
                Some("currency".into()),
            ));
        }
    }
    match mode.as_str() {
        "setup" if !items.is_empty() => {
            return Err(ApiError::invalid_request(
                "You cannot pass `line_items` in `setup` mode.",
                Some("line_items".into()),
            ))
        }
        "subscription" | "payment" if items.is_empty() => {
            return Err(ApiError::parameter_missing("line_items"))
        }
        _ => {}
    }
    if let Some(days) = trial_days {
        if mode != "subscription" {
            return Err(ApiError::invalid_request(
                "subscription_data is only allowed in `subscription` mode.",
                Some("subscription_data".into()),
            ));
        }
        if !(1..=730).contains(&days) {
            return Err(ApiError::invalid_value(
                "subscription_data[trial_period_days]",
                "subscription_data[trial_period_days] must be between 1 and 730.",
            ));
        }
    }
    let now = store.now();
    let expires_at = match expires_at {
        None => now + 24 * 3600,
        Some(at) if (now + 1800..=now + 24 * 3600).contains(&at) => at,
        Some(_) => {
            return Err(ApiError::invalid_value(
                "expires_at",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            ))
        }
    };
    let session = open_session(
        store,
        NewSession {
            mode: &mode,
            customer,
            customer_details: customer_object.map_or(
                Value::Null,
                |c| json!({"email": c["email"], "name": c["name"]}),
            ),
            customer_email,
            currency: currency.map(|c| c.to_ascii_lowercase()),
            client_reference_id,
            success_url,
            cancel_url,
            allow_promotion_codes,
            locale,
            expires_at,
            metadata: merge_metadata(&json!({}), metadata),
        },
        CheckoutTerms {
            items,
            trial_period_days: trial_days,
            subscription_metadata: merge_metadata(&json!({}), subscription_metadata)
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
    );
    Ok(session)
}

/// What an open Checkout session is made of (its parameters, checked).
pub struct NewSession<'a> {
    pub mode: &'a str,
    pub customer: Option<String>,
    pub customer_details: Value,
    pub customer_email: Option<String>,
    /// The session's currency where no line item gives one (setup mode).
    pub currency: Option<String>,
    pub client_reference_id: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub allow_promotion_codes: Option<bool>,
    pub locale: Option<String>,
    pub expires_at: i64,
    pub metadata: Value,
}

/// Stores an open session and what it sells (from the API, or a trigger).
pub fn open_session(store: &mut Store, spec: NewSession<'_>, terms: CheckoutTerms) -> Value {
    let mode = spec.mode;
    let total: i64 = terms
        .items
        .iter()
        .map(|(price, q)| price["unit_amount"].as_i64().unwrap_or_default() * q)
        .sum();
    let currency = terms.items.first().map_or_else(
        || json!(spec.currency),
        |(price, _)| price["currency"].clone(),
    );
    let no_customer = spec.customer.is_none();
    let id = format!("cs_test_{}", crate::ids::random_token(58));
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "allow_promotion_codes": spec.allow_promotion_codes,
        "amount_subtotal": if mode == "setup" { Value::Null } else { json!(total) },
        "amount_total": if mode == "setup" { Value::Null } else { json!(total) },
        "cancel_url": spec.cancel_url,
        "client_reference_id": spec.client_reference_id,
        "created": store.now(),
        "currency": currency,
        "customer": spec.customer,
        "customer_creation": if no_customer && mode == "payment" { json!("if_required") } else if no_customer { json!("always") } else { Value::Null },
        "customer_details": spec.customer_details,
        "customer_email": spec.customer_email,
        "expires_at": spec.expires_at,
        "invoice": null,
        "livemode": false,
        "locale": spec.locale,
        "metadata": spec.metadata,
        "mode": mode,
        "payment_intent": null,
        "payment_method_types": ["card"],
        "payment_status": if mode == "setup" { "no_payment_required" } else { "unpaid" },
        "setup_intent": null,
        "status": "open",
        "subscription": null,
        "success_url": spec.success_url,
        "ui_mode": "hosted",
        "url": format!("{}/checkout/{id}", store.base_url),
    });
    store.checkout_terms.insert(id, terms);
    store.checkout_sessions.insert(session.clone());
    session
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    existing(store, call.id())
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let customer = p.str("customer")?;
    let subscription = p.str("subscription")?;
    let status = p.str("status")?;
    let payment_intent = p.str("payment_intent")?;
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&["customer_details", "payment_link", "customer_account"])?;
    let matching: Vec<Value> = store
        .checkout_sessions
        .newest_first()
        .filter(|s| customer.as_deref().is_none_or(|v| s["customer"] == v))
        .filter(|s| {
            subscription
                .as_deref()
                .is_none_or(|v| s["subscription"] == v)
        })
        .filter(|s| status.as_deref().is_none_or(|v| s["status"] == v))
        .filter(|s| {
            payment_intent
                .as_deref()
                .is_none_or(|v| s["payment_intent"] == v)
        })
        .filter(|s| created.contains(s))
        .cloned()
        .collect();
    page.list(matching, "checkout.session", call.path)
}

/// open -> expired; emits `checkout.session.expired`.
pub fn expire_session(store: &mut Store, id: &str, cause: &Cause) -> ApiResult<Value> {
    let mut session = existing(store, id)?;
    if session["status"] != "open" {
        return Err(ApiError::state_conflict(format!(
            "Only Checkout Sessions with a status of `open` can be expired. This Checkout Session has a status of `{}`.",
            session["status"].as_str().unwrap_or_default()
        )));
    }
    session["status"] = json!("expired");
    session["url"] = Value::Null;
    store.checkout_sessions.insert(session.clone());
    store.emit("checkout.session.expired", &session, None, cause);
    Ok(session)
}

pub fn expire(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    expire_session(store, call.id(), &call.cause)
}

/// A line-items list for `GET /v1/checkout/sessions/:id/line_items`.
pub fn line_items(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let page = Page::read(call.params)?;
    call.params.finish(&[])?;
    existing(store, call.id())?;
    let data = crate::expand::checkout_line_items(store, call.id())["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    page.list(data, "item", call.path)
}
