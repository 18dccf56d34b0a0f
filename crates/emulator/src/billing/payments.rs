//! Paying an open invoice with a card, and what a paid or failed invoice does
//! to its subscription.

use serde_json::{json, Value};

use crate::cards::{charge, CardBehaviour, ChargeOutcome};
use crate::error::ApiError;
use crate::store::{Cause, Store};

/// How one payment attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentResult {
    Paid,
    Failed(ApiError),
    RequiresAction,
}

pub struct Attempt<'a> {
    pub payment_method: Option<&'a str>,
    /// The customer is on a page (checkout, hosted invoice) rather than away.
    pub on_session: bool,
    pub authenticated: bool,
    /// Counts toward `attempt_count` (the automatic schedule; later manual
    /// attempts do not).
    pub automatic: bool,
}

/// The payment method a subscription's invoices charge.
pub fn payment_method_for(
    store: &Store,
    customer: &str,
    subscription: Option<&Value>,
) -> Option<String> {
    subscription
        .and_then(|s| s["default_payment_method"].as_str())
        .or_else(|| {
            store
                .customers
                .get(customer)
                .and_then(|c| c["invoice_settings"]["default_payment_method"].as_str())
        })
        .map(str::to_owned)
}

/// What a charge of an invoice would do, without doing it (so a request can
/// refuse, or order its events, before anything changes).
pub fn predict_payment(store: &Store, amount_due: i64, attempt: &Attempt<'_>) -> PaymentResult {
    if amount_due <= 0 {
        return PaymentResult::Paid;
    }
    let Some(pm) = attempt.payment_method else {
        return PaymentResult::Failed(no_payment_method());
    };
    let behaviour = store
        .card_behaviours
        .get(pm)
        .copied()
        .unwrap_or(CardBehaviour::Succeeds);
    match charge(
        behaviour,
        amount_due,
        attempt.on_session,
        attempt.authenticated,
    ) {
        ChargeOutcome::Succeeded => PaymentResult::Paid,
        ChargeOutcome::Declined(error) => PaymentResult::Failed(error),
        ChargeOutcome::RequiresAction => PaymentResult::RequiresAction,
    }
}

pub fn no_payment_method() -> ApiError {
    ApiError::invalid_with_code(
        "resource_missing",
        "This customer has no attached payment source or default payment method. Please consider adding a default payment method. For more information, visit https://stripe.com/docs/billing/subscriptions/payment-methods-setting#payment-method-priority.",
        None,
    )
}

/// Charges an open invoice and records the outcome on it; the events come
/// from `emit_payment_outcome`, so a caller can put other events between.
pub fn collect(store: &mut Store, invoice_id: &str, attempt: &Attempt<'_>) -> PaymentResult {
    let due = store
        .invoices
        .get(invoice_id)
        .and_then(|i| i["amount_remaining"].as_i64())
        .unwrap_or_default();
    let result = predict_payment(store, due, attempt);
    let now = store.now();
    let Some(invoice) = store.invoices.get_mut(invoice_id) else {
        return PaymentResult::Failed(ApiError::no_such("invoice", invoice_id));
    };
    invoice["attempted"] = json!(true);
    if attempt.automatic {
        invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or_default() + 1);
    }
    if result == PaymentResult::Paid {
        invoice["status"] = json!("paid");
        invoice["amount_paid"] = json!(due.max(0));
        invoice["amount_remaining"] = json!(0);
        invoice["next_payment_attempt"] = Value::Null;
        invoice["status_transitions"]["paid_at"] = json!(now);
        if let Some(pm) = attempt.payment_method {
            invoice["default_payment_method"] = json!(pm);
        }
    }
    result
}

/// `invoice.paid` and `invoice.payment_succeeded`, or `invoice.payment_failed`
/// (with `invoice.payment_action_required` when the card wants authentication).
pub fn emit_payment_outcome(
    store: &mut Store,
    invoice_id: &str,
    result: &PaymentResult,
    cause: &Cause,
) {
    let Some(snapshot) = store.invoices.get(invoice_id).cloned() else {
        return;
    };
    match result {
        PaymentResult::Paid => {
            store.emit("invoice.paid", &snapshot, None, cause);
            store.emit("invoice.payment_succeeded", &snapshot, None, cause);
        }
        PaymentResult::Failed(_) => store.emit("invoice.payment_failed", &snapshot, None, cause),
        PaymentResult::RequiresAction => {
            store.emit("invoice.payment_failed", &snapshot, None, cause);
            store.emit("invoice.payment_action_required", &snapshot, None, cause);
        }
    }
}

/// `collect` then its events.
pub fn attempt_payment(
    store: &mut Store,
    invoice_id: &str,
    attempt: &Attempt<'_>,
    cause: &Cause,
) -> PaymentResult {
    let result = collect(store, invoice_id, attempt);
    emit_payment_outcome(store, invoice_id, &result, cause);
    result
}

/// After an invoice of a subscription is paid: an incomplete or past-due
/// subscription becomes active, a pending update is applied. Emits
/// `customer.subscription.updated` (and `pending_update_applied`).
pub fn settle_subscription(store: &mut Store, invoice_id: &str, cause: &Cause) {
    let Some(subscription_id) = store
        .invoices
        .get(invoice_id)
        .and_then(|i| i["parent"]["subscription_details"]["subscription"].as_str())
        .map(str::to_owned)
    else {
        return;
    };
    let Some(before) = store.subscriptions.get(&subscription_id).cloned() else {
        return;
    };
    if before["latest_invoice"] != invoice_id {
        return;
    }
    let mut after = before.clone();
    let mut applied_pending = false;
    if let Some(pending) = before["pending_update"].as_object() {
        if let Some(items) = pending.get("subscription_items").and_then(Value::as_array) {
            after["items"]["data"] = json!(items);
            after["items"]["total_count"] = json!(items.len());
        }
        after["pending_update"] = Value::Null;
        applied_pending = true;
    }
    let trial_over = before["status"] == "trialing"
        && before["trial_end"]
            .as_i64()
            .is_some_and(|end| end <= store.now());
    if trial_over
        || matches!(
            before["status"].as_str(),
            Some("incomplete" | "past_due" | "unpaid")
        )
    {
        let trialing = after["trial_end"]
            .as_i64()
            .is_some_and(|end| end > store.now());
        after["status"] = json!(if trialing { "trialing" } else { "active" });
    }
    if after == before {
        return;
    }
    store.subscriptions.insert(after.clone());
    let previous = Store::changed_fields(&before, &after);
    store.emit(
        "customer.subscription.updated",
        &after,
        Some(previous.clone()),
        cause,
    );
    if applied_pending {
        store.emit(
            "customer.subscription.pending_update_applied",
            &after,
            Some(previous),
            cause,
        );
    }
}

/// After a subscription's invoice fails: an active subscription becomes
/// `past_due` (emits `customer.subscription.updated`).
pub fn mark_past_due(store: &mut Store, subscription_id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(subscription_id).cloned() else {
        return;
    };
    if !matches!(before["status"].as_str(), Some("active" | "trialing")) {
        return;
    }
    let mut after = before.clone();
    after["status"] = json!("past_due");
    store.subscriptions.insert(after.clone());
    store.emit(
        "customer.subscription.updated",
        &after,
        Some(Store::changed_fields(&before, &after)),
        cause,
    );
}
