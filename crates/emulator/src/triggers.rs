//! Making an event happen: creates in the emulator what the event needs
//! (a customer, a card, a subscription, an invoice...) and lets the normal
//! flow emit it, with the events that come with it. Used by the dashboard
//! and by `kavachos-stripe trigger`.

use serde_json::{json, Map, Value};

use crate::billing::checkout_completion::{complete_checkout, CardEntry};
use crate::billing::subscription_object::{has_ended, NewSubscription};
use crate::billing::subscription_start::{start_subscription, StartSpec, StartedBy};
use crate::cards::card_by_token;
use crate::error::{ApiError, ApiResult};
use crate::resources::checkout_sessions::{open_session, NewSession};
use crate::resources::customers::{add_customer, delete_customer, set_default_card};
use crate::resources::invoices::pay_invoice;
use crate::resources::payment_methods::attach_new_card;
use crate::resources::subscriptions::{
    cancel_now, change_subscription, CancelAt, Cancellation, SubscriptionChange,
};
use crate::resources::SentItem;
use crate::store::{Cause, CheckoutTerms, Store};

/// The event types `trigger` can make happen.
pub const TRIGGERABLE: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
];

/// Whose event it is: an existing customer, or a new one with this email
/// and metadata (also put on a new subscription).
#[derive(Debug, Clone, Default)]
pub struct TriggerFor {
    pub customer: Option<String>,
    pub email: Option<String>,
    pub metadata: Vec<(String, String)>,
}

fn metadata(target: &TriggerFor) -> Map<String, Value> {
    target
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// The customer the event is for, made if needed, with `card` (a test token)
/// as its default payment method.
fn customer_with_card(
    store: &mut Store,
    target: &TriggerFor,
    card: &str,
    cause: &Cause,
) -> ApiResult<String> {
    let id = match &target.customer {
        Some(id) => {
            crate::billing::customer_param(store, id, "customer")?;
            id.clone()
        }
        None => add_customer(store, target.email.as_deref(), metadata(target), cause),
    };
    let card =
        card_by_token(card).ok_or_else(|| ApiError::invalid_request("unknown test card", None))?;
    let pm = attach_new_card(store, card, &id, cause)?;
    set_default_card(store, &id, &pm, cause);
    Ok(id)
}

/// The first recurring prices of the catalog (two, for plan changes).
fn recurring_prices(store: &Store) -> ApiResult<(Value, Option<Value>)> {
    let mut prices = store
        .prices
        .oldest_first()
        .filter(|p| !p["recurring"].is_null() && p["active"] == true)
        .cloned();
    let first = prices.next().ok_or_else(|| {
        ApiError::state_conflict("The catalog has no recurring price to subscribe to.")
    })?;
    let second = prices.find(|p| crate::billing::periods::same_cycle(p, &first));
    Ok((first, second))
}

fn subscribe(
    store: &mut Store,
    customer: &str,
    target: &TriggerFor,
    trial_days: Option<i64>,
    cause: &Cause,
) -> ApiResult<Value> {
    let (price, _) = recurring_prices(store)?;
    let now = store.now();
    let billing_mode = store.settings.billing_mode.clone();
    start_subscription(
        store,
        StartSpec {
            subscription: NewSubscription {
                customer,
                items: vec![(price, 1)],
                trial_end: trial_days.map(|d| now + d * 86_400),
                metadata: metadata(target),
                default_payment_method: None,
                billing_mode: &billing_mode,
                now,
            },
            payment_behavior: "allow_incomplete",
            cancel_at_period_end: false,
            cancel_at: None,
            started_by: StartedBy::Api,
        },
        cause,
    )
}

/// A live subscription of the customer, or a new one.
fn live_subscription(
    store: &mut Store,
    customer: &str,
    target: &TriggerFor,
    cause: &Cause,
) -> ApiResult<Value> {
    let existing = store
        .subscriptions
        .newest_first()
        .find(|s| s["customer"] == customer && !has_ended(s))
        .cloned();
    match existing {
        Some(sub) => Ok(sub),
        None => subscribe(store, customer, target, None, cause),
    }
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

/// A plan change held as pending because its payment failed.
fn pending_change(
    store: &mut Store,
    target: &TriggerFor,
    cause: &Cause,
) -> ApiResult<(String, String)> {
    let customer = customer_with_card(store, target, "pm_card_visa", cause)?;
    let sub = live_subscription(store, &customer, target, cause)?;
    let (first, second) = recurring_prices(store)?;
    let current = sub["items"]["data"][0]["price"]["id"].clone();
    let other = if current == first["id"] {
        second
    } else {
        Some(first)
    };
    let other = other.ok_or_else(|| {
        ApiError::state_conflict(
            "A pending update needs two recurring prices on the same interval in the catalog.",
        )
    })?;
    let failing = card_by_token("pm_card_chargeCustomerFail")
        .ok_or_else(|| ApiError::state_conflict("no failing card"))?;
    let pm = attach_new_card(store, failing, &customer, cause)?;
    set_default_card(store, &customer, &pm, cause);
    let mut change = SubscriptionChange::none();
    change.items = vec![SentItem {
        id: sub["items"]["data"][0]["id"].as_str().map(str::to_owned),
        price: other["id"].as_str().map(str::to_owned),
        quantity: None,
        deleted: false,
    }];
    change.proration_behavior = "always_invoice".into();
    change.payment_behavior = "pending_if_incomplete".into();
    let changed = change_subscription(store, &id_of(&sub), change, cause)?;
    if changed["pending_update"].is_null() {
        return Err(ApiError::state_conflict(
            "The change needed no payment, so nothing is pending.",
        ));
    }
    Ok((
        id_of(&changed),
        changed["latest_invoice"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// Makes `kind` happen for `target`.
pub fn trigger(store: &mut Store, kind: &str, target: &TriggerFor) -> ApiResult<()> {
    let cause = Cause::default();
    match kind {
        "customer.created" => {
            add_customer(store, target.email.as_deref(), metadata(target), &cause);
        }
        "customer.updated" => {
            customer_with_card(store, target, "pm_card_visa", &cause)?;
        }
        "customer.deleted" => {
            let customer = customer_with_card(store, target, "pm_card_visa", &cause)?;
            delete_customer(store, &customer, &cause)?;
        }
        "customer.subscription.created"
        | "invoice.created"
        | "invoice.finalized"
        | "invoice.paid"
        | "invoice.payment_succeeded" => {
            let customer = customer_with_card(store, target, "pm_card_visa", &cause)?;
            subscribe(store, &customer, target, None, &cause)?;
        }
        "customer.subscription.updated" => {
            let customer = customer_with_card(store, target, "pm_card_visa", &cause)?;
            let sub = live_subscription(store, &customer, target, &cause)?;
            let scheduled = sub["cancel_at_period_end"] == true || !sub["cancel_at"].is_null();
            let mut change = SubscriptionChange::none();
            if scheduled {
                change.cancel_at_period_end = Some(false);
                change.cancel_at = Some(CancelAt::Clear);
            } else {
                change.cancel_at_period_end = Some(true);
            }
            change_subscription(store, &id_of(&sub), change, &cause)?;
        }
        "customer.subscription.deleted" => {
            let customer = customer_with_card(store, target, "pm_card_visa", &cause)?;
            let sub = live_subscription(store, &customer, target, &cause)?;
            cancel_now(store, &id_of(&sub), &Cancellation::default(), &cause)?;
        }
        "customer.subscription.trial_will_end" => {
            // A trial of two days: the notice is due at once.
            let customer = customer_with_card(store, target, "pm_card_visa", &cause)?;
            subscribe(store, &customer, target, Some(2), &cause)?;
            crate::billing::schedule::run_due(store);
        }
        "invoice.payment_failed" | "invoice.payment_action_required" => {
            let card = if kind == "invoice.payment_failed" {
                "pm_card_chargeCustomerFail"
            } else {
                "pm_card_authenticationRequired"
            };
            let customer = customer_with_card(store, target, card, &cause)?;
            subscribe(store, &customer, target, None, &cause)?;
        }
        "invoice.marked_uncollectible" => {
            // A renewal-like failure: the first payment fails, the invoice stays open.
            let customer = customer_with_card(store, target, "pm_card_chargeCustomerFail", &cause)?;
            let sub = subscribe(store, &customer, target, None, &cause)?;
            let invoice = sub["latest_invoice"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            crate::resources::invoices::mark_invoice_uncollectible(store, &invoice, &cause)?;
        }
        "invoice.voided" => {
            pending_change(store, target, &cause)?;
            expire_pending_now(store)?;
        }
        "checkout.session.completed" => {
            let customer = match &target.customer {
                Some(id) => id.clone(),
                None => customer_with_card(store, target, "pm_card_visa", &cause)?,
            };
            let (price, _) = recurring_prices(store)?;
            let session = open_session(
                store,
                NewSession {
                    mode: "subscription",
                    customer: Some(customer),
                    customer_details: Value::Null,
                    customer_email: None,
                    currency: None,
                    client_reference_id: None,
                    success_url: None,
                    cancel_url: None,
                    allow_promotion_codes: None,
                    locale: None,
                    expires_at: store.now() + 86_400,
                    metadata: Value::Object(metadata(target)),
                },
                CheckoutTerms {
                    items: vec![(price, 1)],
                    trial_period_days: None,
                    subscription_metadata: metadata(target),
                },
            );
            let id = session["id"].as_str().unwrap_or_default().to_owned();
            complete_checkout(
                store,
                &id,
                CardEntry {
                    number: "4242424242424242",
                    email: None,
                    authenticated: false,
                },
                &cause,
            )?;
        }
        "customer.subscription.pending_update_applied" => {
            let (_, invoice) = pending_change(store, target, &cause)?;
            let visa =
                card_by_token("pm_card_visa").ok_or_else(|| ApiError::state_conflict("no visa"))?;
            let customer = store
                .invoices
                .get(&invoice)
                .and_then(|i| i["customer"].as_str())
                .unwrap_or_default()
                .to_owned();
            let pm = attach_new_card(store, visa, &customer, &cause)?;
            pay_invoice(store, &invoice, Some(pm), false, false, &cause)?;
        }
        "customer.subscription.pending_update_expired" => {
            pending_change(store, target, &cause)?;
            expire_pending_now(store)?;
        }
        other => {
            return Err(ApiError::invalid_value(
                "type",
                format!(
                    "The emulator cannot trigger {other}; it can trigger: {}",
                    TRIGGERABLE.join(", ")
                ),
            ))
        }
    }
    Ok(())
}

/// Brings the newest pending update's expiry to now and runs it.
fn expire_pending_now(store: &mut Store) -> ApiResult<()> {
    let now = store.now();
    let id = store
        .subscriptions
        .newest_first()
        .find(|s| !s["pending_update"].is_null())
        .map(id_of)
        .ok_or_else(|| ApiError::state_conflict("no pending update"))?;
    if let Some(sub) = store.subscriptions.get_mut(&id) {
        sub["pending_update"]["expires_at"] = json!(now);
    }
    crate::billing::schedule::run_due(store);
    Ok(())
}
