//! What Stripe does as time passes, run in time order up to a moment:
//! Checkout sessions and incomplete subscriptions expiring, trial-end
//! notices, renewals (an invoice at the period's end, finalized and charged
//! an hour later), retries of failed payments and what happens when they
//! run out, scheduled cancellations, pending updates expiring.

use serde_json::{json, Value};

use super::invoicing::{
    build_invoice, claim_pending_items, create_invoice, finalize_invoice, period_line, NewInvoice,
};
use super::payments::{
    collect, emit_payment_outcome, mark_past_due, payment_method_for, settle_subscription, Attempt,
    PaymentResult,
};
use super::periods::period_end;
use super::subscription_object::{current_period, items_of};
use crate::resources::checkout_sessions::expire_session;
use crate::store::{Cause, RetriesEnd, Store};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Stripe finalizes and charges a renewal an hour after `invoice.created`.
const FINALIZE_AFTER: i64 = HOUR;
/// An incomplete subscription's first invoice may be paid for 23 hours.
const INCOMPLETE_FOR: i64 = 23 * HOUR;
/// `customer.subscription.trial_will_end` comes three days before the end.
const TRIAL_NOTICE: i64 = 3 * DAY;

/// One thing due at a time, in the order ties run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    ExpireCheckout(String),
    ExpireIncomplete(String),
    ExpirePending(String),
    TrialWillEnd(String),
    Cancel(String),
    Renew(String),
    Finalize(String),
    Retry(String),
}

fn ids_of(collection: &crate::store::Collection) -> impl Iterator<Item = (&str, &Value)> {
    collection
        .oldest_first()
        .map(|o| (o["id"].as_str().unwrap_or_default(), o))
}

/// The earliest work due, if any.
fn next_due(store: &Store) -> Option<(i64, Due)> {
    let mut due: Vec<(i64, Due)> = Vec::new();
    for (id, session) in ids_of(&store.checkout_sessions) {
        if session["status"] == "open" {
            if let Some(at) = session["expires_at"].as_i64() {
                due.push((at, Due::ExpireCheckout(id.to_owned())));
            }
        }
    }
    for (id, sub) in ids_of(&store.subscriptions) {
        let status = sub["status"].as_str().unwrap_or_default();
        if status == "incomplete" {
            let created = sub["created"].as_i64().unwrap_or_default();
            due.push((
                created + INCOMPLETE_FOR,
                Due::ExpireIncomplete(id.to_owned()),
            ));
            continue;
        }
        if !matches!(status, "trialing" | "active" | "past_due" | "unpaid") {
            continue;
        }
        if let Some(at) = sub["pending_update"]["expires_at"].as_i64() {
            due.push((at, Due::ExpirePending(id.to_owned())));
        }
        if status == "trialing" {
            if let Some(end) = sub["trial_end"].as_i64() {
                if !store.trial_notices.contains(&format!("{id}:{end}")) {
                    due.push((end - TRIAL_NOTICE, Due::TrialWillEnd(id.to_owned())));
                }
            }
        }
        let (_, end) = current_period(sub);
        let cancel_at = sub["cancel_at"].as_i64();
        match cancel_at {
            Some(at) if at <= end => due.push((at, Due::Cancel(id.to_owned()))),
            _ => due.push((end, Due::Renew(id.to_owned()))),
        }
    }
    for (id, invoice) in ids_of(&store.invoices) {
        if invoice["auto_advance"] != true {
            continue;
        }
        match invoice["status"].as_str() {
            Some("draft") => {
                let created = invoice["created"].as_i64().unwrap_or_default();
                due.push((created + FINALIZE_AFTER, Due::Finalize(id.to_owned())));
            }
            Some("open") => {
                if let Some(at) = invoice["next_payment_attempt"].as_i64() {
                    due.push((at, Due::Retry(id.to_owned())));
                }
            }
            _ => {}
        }
    }
    due.into_iter().min()
}

/// Runs everything due up to `target` in time order, moving the clock to
/// each moment, and leaves the clock at `target` (or now, if later).
pub fn run_until(store: &mut Store, target: i64) {
    let cause = Cause::default();
    // A bound on the work of one call: a subscription renewing daily for
    // years is still a few thousand steps.
    for _ in 0..100_000 {
        let Some((at, due)) = next_due(store) else {
            break;
        };
        if at > target {
            break;
        }
        store.clock.advance_to(at);
        perform(store, due, &cause);
    }
    store.clock.advance_to(target);
}

/// Runs what is due by now (wall time passes too).
pub fn run_due(store: &mut Store) {
    let now = store.now();
    run_until(store, now);
}

/// Whether anything is due by now, without doing it.
pub fn has_due(store: &Store) -> bool {
    next_due(store).is_some_and(|(at, _)| at <= store.now())
}

fn perform(store: &mut Store, due: Due, cause: &Cause) {
    match due {
        Due::ExpireCheckout(id) => {
            let _ = expire_session(store, &id, cause);
        }
        Due::ExpireIncomplete(id) => expire_incomplete(store, &id, cause),
        Due::ExpirePending(id) => expire_pending(store, &id, cause),
        Due::TrialWillEnd(id) => trial_will_end(store, &id, cause),
        Due::Cancel(id) => end_scheduled(store, &id, cause),
        Due::Renew(id) => renew(store, &id, cause),
        Due::Finalize(id) => {
            finalize_invoice(store, &id, cause);
            charge_automatically(store, &id, cause);
        }
        Due::Retry(id) => charge_automatically(store, &id, cause),
    }
}

pub fn void_invoice(store: &mut Store, id: &str, cause: &Cause) {
    let now = store.now();
    let Some(invoice) = store.invoices.get_mut(id) else {
        return;
    };
    if !matches!(invoice["status"].as_str(), Some("open" | "draft")) {
        return;
    }
    invoice["status"] = json!("void");
    invoice["amount_remaining"] = json!(0);
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["voided_at"] = json!(now);
    let snapshot = invoice.clone();
    store.emit("invoice.voided", &snapshot, None, cause);
}

fn update_subscription(store: &mut Store, before: &Value, after: Value, kind: &str, cause: &Cause) {
    store.subscriptions.insert(after.clone());
    let previous = Store::changed_fields(before, &after);
    store.emit(kind, &after, Some(previous), cause);
}

/// `incomplete` for 23 hours: `incomplete_expired`, its invoice voided.
fn expire_incomplete(store: &mut Store, id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(id).cloned() else {
        return;
    };
    if let Some(invoice) = before["latest_invoice"].as_str() {
        void_invoice(store, invoice, cause);
    }
    let now = store.now();
    let mut after = before.clone();
    after["status"] = json!("incomplete_expired");
    after["canceled_at"] = json!(now);
    after["ended_at"] = json!(now);
    update_subscription(
        store,
        &before,
        after,
        "customer.subscription.updated",
        cause,
    );
}

/// A pending update not paid in time: its invoice voided, the old items kept.
fn expire_pending(store: &mut Store, id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(id).cloned() else {
        return;
    };
    if let Some(invoice) = before["latest_invoice"].as_str() {
        void_invoice(store, invoice, cause);
    }
    let mut after = before.clone();
    after["pending_update"] = Value::Null;
    update_subscription(
        store,
        &before,
        after,
        "customer.subscription.pending_update_expired",
        cause,
    );
}

fn trial_will_end(store: &mut Store, id: &str, cause: &Cause) {
    let Some(sub) = store.subscriptions.get(id).cloned() else {
        return;
    };
    let end = sub["trial_end"].as_i64().unwrap_or_default();
    store.trial_notices.insert(format!("{id}:{end}"));
    store.emit("customer.subscription.trial_will_end", &sub, None, cause);
}

/// A scheduled cancellation reaches its time: canceled, no renewal invoice.
fn end_scheduled(store: &mut Store, id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(id).cloned() else {
        return;
    };
    let now = store.now();
    let mut after = before.clone();
    after["status"] = json!("canceled");
    after["ended_at"] = json!(now);
    after["pending_update"] = Value::Null;
    after["cancellation_details"]["reason"] = json!("cancellation_requested");
    store.subscriptions.insert(after.clone());
    // Prorations waiting for a next invoice that will not come are dropped.
    let dropped: Vec<String> = store
        .invoice_items
        .oldest_first()
        .filter(|i| {
            i["invoice"].is_null() && i["parent"]["subscription_details"]["subscription"] == id
        })
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    for item in dropped {
        store.invoice_items.remove(&item);
    }
    store.emit("customer.subscription.deleted", &after, None, cause);
}

/// The period ends (or the trial): the next period starts and its invoice
/// is drafted; it is finalized and charged an hour later. An `unpaid`
/// subscription's invoices stay drafts.
fn renew(store: &mut Store, id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(id).cloned() else {
        return;
    };
    let (_, end) = current_period(&before);
    let customer = before["customer"].as_str().unwrap_or_default().to_owned();
    let mut items = items_of(&before);
    for item in &mut items {
        let next_end = period_end(end, &item["price"]["recurring"]);
        item["current_period_start"] = json!(end);
        item["current_period_end"] = json!(next_end);
    }
    let invoice_id = crate::ids::new_id("in");
    let claimed = claim_pending_items(store, id, &invoice_id);
    let lines = items
        .iter()
        .map(|item| {
            period_line(
                item,
                (
                    item["current_period_start"].as_i64().unwrap_or_default(),
                    item["current_period_end"].as_i64().unwrap_or_default(),
                ),
            )
        })
        .collect();
    let mut draft = build_invoice(
        store,
        NewInvoice {
            customer: &customer,
            subscription: Some(id),
            subscription_metadata: before["metadata"].clone(),
            billing_reason: "subscription_cycle",
            lines,
            extra_lines: claimed,
            currency: before["currency"].clone(),
            period: (current_period(&before).0, end),
        },
        Some(invoice_id.clone()),
    );
    if before["status"] == "unpaid" {
        draft["auto_advance"] = json!(false);
    }
    draft["test_clock"] = before["test_clock"].clone();
    let mut after = before.clone();
    after["items"]["data"] = json!(items);
    after["latest_invoice"] = json!(invoice_id);
    update_subscription(
        store,
        &before,
        after,
        "customer.subscription.updated",
        cause,
    );
    create_invoice(store, draft, cause);
}

/// An automatic attempt (the first one, or a retry): paid, or scheduled
/// for the next retry, or out of retries.
fn charge_automatically(store: &mut Store, invoice_id: &str, cause: &Cause) {
    let Some(invoice) = store.invoices.get(invoice_id).cloned() else {
        return;
    };
    if invoice["status"] != "open" {
        return;
    }
    let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
    let subscription_id = invoice["parent"]["subscription_details"]["subscription"]
        .as_str()
        .map(str::to_owned);
    let subscription = subscription_id
        .as_deref()
        .and_then(|s| store.subscriptions.get(s))
        .cloned();
    let pm = payment_method_for(store, &customer, subscription.as_ref());
    let attempt = Attempt {
        payment_method: pm.as_deref(),
        on_session: false,
        authenticated: false,
        automatic: true,
    };
    let result = collect(store, invoice_id, &attempt);
    if result == PaymentResult::Paid {
        emit_payment_outcome(store, invoice_id, &result, cause);
        settle_subscription(store, invoice_id, cause);
        return;
    }
    // Retries are counted from the first failure.
    let attempts = store
        .invoices
        .get(invoice_id)
        .and_then(|i| i["attempt_count"].as_i64())
        .unwrap_or(1);
    let now = store.now();
    let first_failure = *store
        .first_failures
        .entry(invoice_id.to_owned())
        .or_insert(now);
    let next = store
        .settings
        .retry_days
        .get(usize::try_from(attempts - 1).unwrap_or(usize::MAX))
        .map(|days| first_failure + days * DAY);
    if let Some(invoice) = store.invoices.get_mut(invoice_id) {
        invoice["next_payment_attempt"] = json!(next);
    }
    emit_payment_outcome(store, invoice_id, &result, cause);
    let Some(subscription_id) = subscription_id else {
        return;
    };
    if next.is_some() {
        mark_past_due(store, &subscription_id, cause);
        return;
    }
    retries_ran_out(store, &subscription_id, cause);
}

fn retries_ran_out(store: &mut Store, subscription_id: &str, cause: &Cause) {
    let Some(before) = store.subscriptions.get(subscription_id).cloned() else {
        return;
    };
    let now = store.now();
    let mut after = before.clone();
    match store.settings.when_retries_end {
        RetriesEnd::Cancel => {
            after["status"] = json!("canceled");
            after["canceled_at"] = json!(now);
            after["ended_at"] = json!(now);
            after["cancellation_details"]["reason"] = json!("payment_failed");
            store.subscriptions.insert(after.clone());
            store.emit("customer.subscription.deleted", &after, None, cause);
        }
        RetriesEnd::Unpaid => {
            after["status"] = json!("unpaid");
            update_subscription(
                store,
                &before,
                after,
                "customer.subscription.updated",
                cause,
            );
        }
        RetriesEnd::PastDue => mark_past_due(store, subscription_id, cause),
    }
}
