//! Paying a Checkout session on its hosted page: the customer, the card,
//! the subscription (or payment, or saved card), and
//! `checkout.session.completed` last.

use serde_json::{json, Value};

use super::subscription_object::NewSubscription;
use super::subscription_start::{start_subscription, StartSpec, StartedBy};
use crate::cards::{card_by_number, charge, new_payment_method, set_up_on_session, ChargeOutcome};
use crate::error::{ApiError, ApiResult};
use crate::ids::random_token;
use crate::resources::checkout_sessions::expire_session;
use crate::resources::customers::add_customer;
use crate::resources::payment_methods::attach_new_card;
use crate::store::{Cause, Store};

/// What the page shows next.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckoutOutcome {
    /// Paid: go to this URL (the session's `success_url`, or `None` for the
    /// emulator's own confirmation).
    Completed { redirect: Option<String> },
    /// The card wants 3-D Secure: the page asks, then posts again.
    NeedsAuthentication,
}

pub struct CardEntry<'a> {
    pub number: &'a str,
    pub email: Option<&'a str>,
    pub authenticated: bool,
}

pub fn complete_checkout(
    store: &mut Store,
    session_id: &str,
    entry: CardEntry<'_>,
    cause: &Cause,
) -> ApiResult<CheckoutOutcome> {
    let session = store
        .checkout_sessions
        .get(session_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("checkout.session", session_id))?;
    if session["status"] == "open"
        && session["expires_at"]
            .as_i64()
            .is_some_and(|at| at <= store.now())
    {
        expire_session(store, session_id, cause)?;
        return Err(ApiError::state_conflict(
            "This Checkout session has expired.",
        ));
    }
    if session["status"] != "open" {
        return Err(ApiError::state_conflict(format!(
            "This Checkout session is {} and can no longer be paid.",
            session["status"].as_str().unwrap_or_default()
        )));
    }
    let card = card_by_number(entry.number)?;
    // A card Stripe refuses to attach is refused before anything changes.
    new_payment_method(card, None, 0)?;
    let terms = store
        .checkout_terms
        .get(session_id)
        .cloned()
        .unwrap_or_default();
    let mode = session["mode"].as_str().unwrap_or_default().to_owned();
    let total: i64 = terms
        .items
        .iter()
        .map(|(p, q)| p["unit_amount"].as_i64().unwrap_or_default() * q)
        .sum();
    let charged_now = match mode.as_str() {
        "subscription" if terms.trial_period_days.is_none() => total,
        "payment" => total,
        _ => 0,
    };
    let outcome = if charged_now > 0 {
        charge(card.behaviour, charged_now, true, entry.authenticated)
    } else {
        set_up_on_session(card.behaviour, entry.authenticated)
    };
    match outcome {
        ChargeOutcome::Succeeded => {}
        ChargeOutcome::Declined(error) => return Err(error),
        ChargeOutcome::RequiresAction => return Ok(CheckoutOutcome::NeedsAuthentication),
    }
    let email = session["customer_email"]
        .as_str()
        .map(str::to_owned)
        .or(entry.email.map(str::to_owned));
    let customer = match session["customer"].as_str() {
        Some(id) => Some(id.to_owned()),
        None if mode == "payment" => None,
        None => Some(add_customer(
            store,
            email.as_deref(),
            Default::default(),
            cause,
        )),
    };
    let mut completed = session.clone();
    completed["customer"] = json!(customer);
    completed["customer_details"] = json!({"email": email, "name": null});
    completed["status"] = json!("complete");
    completed["url"] = Value::Null;
    match mode.as_str() {
        "subscription" => {
            let customer = customer.unwrap_or_default();
            let pm = attach_new_card(store, card, &customer, cause)?;
            let now = store.now();
            let billing_mode = store.settings.billing_mode.clone();
            let subscription = start_subscription(
                store,
                StartSpec {
                    subscription: NewSubscription {
                        customer: &customer,
                        items: terms.items.clone(),
                        trial_end: terms.trial_period_days.map(|d| now + d * 86_400),
                        metadata: terms.subscription_metadata.clone(),
                        default_payment_method: Some(pm),
                        billing_mode: &billing_mode,
                        now,
                    },
                    payment_behavior: "allow_incomplete",
                    cancel_at_period_end: false,
                    cancel_at: None,
                    started_by: StartedBy::Checkout {
                        authenticated: entry.authenticated,
                    },
                },
                cause,
            )?;
            completed["subscription"] = subscription["id"].clone();
            completed["invoice"] = subscription["latest_invoice"].clone();
            completed["payment_status"] = json!(if terms.trial_period_days.is_some() {
                "no_payment_required"
            } else {
                "paid"
            });
        }
        "payment" => {
            completed["payment_intent"] = json!(format!("pi_{}", random_token(24)));
            completed["payment_status"] = json!("paid");
        }
        _ => {
            if let Some(customer) = &customer {
                attach_new_card(store, card, customer, cause)?;
            }
            completed["setup_intent"] = json!(format!("seti_{}", random_token(24)));
            completed["payment_status"] = json!("no_payment_required");
        }
    }
    store.checkout_sessions.insert(completed.clone());
    store.emit("checkout.session.completed", &completed, None, cause);
    let redirect = completed["success_url"]
        .as_str()
        .map(|url| url.replace("{CHECKOUT_SESSION_ID}", session_id));
    Ok(CheckoutOutcome::Completed { redirect })
}
