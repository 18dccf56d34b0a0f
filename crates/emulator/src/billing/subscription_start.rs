//! Starting a subscription, from the API or from a completed Checkout
//! session: the subscription, its first invoice, the first payment, and the
//! events in the order Stripe sends them.

use serde_json::{json, Value};

use super::invoicing::{
    build_invoice, create_invoice, finalize_invoice, period_line, Line, NewInvoice,
};
use super::payments::{
    collect, emit_payment_outcome, predict_payment, settle_subscription, Attempt, PaymentResult,
};
use super::subscription_object::{current_period, items_of, new_subscription, NewSubscription};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::store::{Cause, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    /// `POST /v1/subscriptions`: the customer is away; the answer carries
    /// the final status.
    Api,
    /// A Checkout page: the customer is there (and may have authenticated).
    Checkout { authenticated: bool },
}

pub struct StartSpec<'a> {
    pub subscription: NewSubscription<'a>,
    pub payment_behavior: &'a str,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub started_by: StartedBy,
}

/// The first invoice's lines: the first period, or a $0 trial line.
fn first_lines(subscription: &Value) -> Vec<Line> {
    let trial_end = subscription["trial_end"].as_i64();
    items_of(subscription)
        .iter()
        .map(|item| {
            let period = (
                item["current_period_start"].as_i64().unwrap_or_default(),
                item["current_period_end"].as_i64().unwrap_or_default(),
            );
            let mut line = period_line(item, period);
            if trial_end.is_some() {
                line.amount = 0;
                line.description = format!("Trial period for {}", line.description);
            }
            line
        })
        .collect()
}

/// Creates the subscription and its first invoice, pays it, emits the events.
/// Refuses (changing nothing) what Stripe refuses: no payment method without a
/// trial, or a failed payment under `error_if_incomplete`.
pub fn start_subscription(
    store: &mut Store,
    spec: StartSpec<'_>,
    cause: &Cause,
) -> ApiResult<Value> {
    let customer = spec.subscription.customer.to_owned();
    let mut subscription = new_subscription(spec.subscription);
    let test_clock = store
        .customers
        .get(&customer)
        .map_or(Value::Null, |c| c["test_clock"].clone());
    subscription["test_clock"] = test_clock.clone();
    let (_, period_end) = current_period(&subscription);
    if spec.cancel_at_period_end {
        subscription["cancel_at_period_end"] = json!(true);
        subscription["cancel_at"] = json!(period_end);
        subscription["canceled_at"] = json!(store.now());
    } else if let Some(at) = spec.cancel_at {
        subscription["cancel_at"] = json!(at);
        subscription["canceled_at"] = json!(store.now());
    }
    let subscription_id = subscription["id"].as_str().unwrap_or_default().to_owned();
    let payment_method = super::payments::payment_method_for(store, &customer, Some(&subscription));
    let on_session = matches!(spec.started_by, StartedBy::Checkout { .. });
    let attempt = Attempt {
        payment_method: payment_method.as_deref(),
        on_session,
        authenticated: matches!(
            spec.started_by,
            StartedBy::Checkout {
                authenticated: true
            }
        ),
        automatic: true,
    };
    let invoice_id = new_id("in");
    let (period_start, _) = current_period(&subscription);
    let draft = build_invoice(
        store,
        NewInvoice {
            customer: &customer,
            subscription: Some(&subscription_id),
            subscription_metadata: subscription["metadata"].clone(),
            billing_reason: "subscription_create",
            lines: first_lines(&subscription),
            extra_lines: Vec::new(),
            currency: subscription["currency"].clone(),
            period: (period_start, period_start),
        },
        Some(invoice_id.clone()),
    );
    let mut draft = draft;
    draft["test_clock"] = test_clock;
    let due = draft["amount_due"].as_i64().unwrap_or_default();
    let collect_now = spec.payment_behavior != "default_incomplete";
    let predicted = if collect_now {
        predict_payment(store, due, &attempt)
    } else {
        PaymentResult::Failed(ApiError::state_conflict("payment not attempted"))
    };
    if collect_now && predicted != PaymentResult::Paid {
        let refuse =
            spec.payment_behavior == "error_if_incomplete" || attempt.payment_method.is_none();
        if refuse {
            return Err(match predicted {
                PaymentResult::Failed(error) => error,
                _ => ApiError::card_error(
                    "authentication_required",
                    "Your card was declined. This transaction requires authentication.",
                ),
            });
        }
    }
    subscription["latest_invoice"] = json!(invoice_id);
    let trialing = subscription["status"] == "trialing";
    match spec.started_by {
        StartedBy::Api => {
            if predicted == PaymentResult::Paid && !trialing {
                subscription["status"] = json!("active");
            }
            store.subscriptions.insert(subscription.clone());
            store.emit("customer.subscription.created", &subscription, None, cause);
            create_invoice(store, draft, cause);
            finalize_invoice(store, &invoice_id, cause);
            if collect_now {
                let result = collect(store, &invoice_id, &attempt);
                emit_payment_outcome(store, &invoice_id, &result, cause);
            }
        }
        StartedBy::Checkout { .. } => {
            // Observed order: invoice.created, subscription.created (incomplete),
            // invoice.finalized, subscription.updated (active), invoice.paid.
            create_invoice(store, draft, cause);
            store.subscriptions.insert(subscription.clone());
            store.emit("customer.subscription.created", &subscription, None, cause);
            finalize_invoice(store, &invoice_id, cause);
            let result = collect(store, &invoice_id, &attempt);
            if result == PaymentResult::Paid {
                settle_subscription(store, &invoice_id, cause);
            }
            emit_payment_outcome(store, &invoice_id, &result, cause);
        }
    }
    store
        .subscriptions
        .get(&subscription_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", &subscription_id))
}
