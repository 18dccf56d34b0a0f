//! Changing a subscription's items: prorations, the invoice an update may
//! need, and what a failed payment does under each `payment_behavior`.

use serde_json::{json, Value};

use super::invoicing::{
    add_pending_item, build_invoice, create_invoice, finalize_invoice, period_line, Line,
    NewInvoice,
};
use super::payments::{
    collect, emit_payment_outcome, payment_method_for, predict_payment, Attempt, PaymentResult,
};
use super::periods::{period_end, remaining_fraction, same_cycle};
use super::subscription_object::{current_period, items_of, new_item};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::store::{Cause, Store};

/// One `items[n]` entry of an update.
pub struct ItemEdit {
    pub id: Option<String>,
    pub price: Option<Value>,
    pub quantity: Option<i64>,
    pub deleted: bool,
}

/// Items as sent (`{prefix}[n][id|price|quantity|deleted]`) with their
/// prices looked up; a missing or one-time price is refused by its name.
pub fn resolve_item_edits(
    store: &Store,
    sent: Vec<crate::resources::SentItem>,
    prefix: &str,
) -> ApiResult<Vec<ItemEdit>> {
    let mut edits = Vec::new();
    for (index, item) in sent.into_iter().enumerate() {
        let price = match item.price {
            Some(price) => Some(crate::billing::recurring_price(
                store,
                &price,
                &format!("{prefix}[{index}][price]"),
            )?),
            None => None,
        };
        edits.push(ItemEdit {
            id: item.id,
            price,
            quantity: item.quantity,
            deleted: item.deleted,
        });
    }
    Ok(edits)
}

/// What the update asks of the items and their billing.
pub struct ItemsChange {
    pub edits: Vec<ItemEdit>,
    pub proration_behavior: String,
    pub proration_date: Option<i64>,
    pub payment_behavior: String,
}

/// The items after the edits, and the lines (prorations or a new period)
/// they cost. `restarts_cycle` when a price moves to another interval: the
/// period restarts now and is charged now.
pub struct PlannedItems {
    pub items: Vec<Value>,
    pub lines: Vec<Line>,
    pub restarts_cycle: bool,
}

fn money_line(item: &Value, amount: i64, period: (i64, i64), credit: bool) -> Line {
    let mut line = period_line(item, period);
    line.amount = amount;
    line.proration = true;
    line.description = format!(
        "{} time on {}",
        if credit { "Unused" } else { "Remaining" },
        line.description
    );
    line
}

/// Plans the new items. Validation errors here change nothing.
pub fn plan_items(
    store: &Store,
    subscription: &Value,
    change: &ItemsChange,
) -> ApiResult<PlannedItems> {
    let now = store.now();
    let subscription_id = subscription["id"].as_str().unwrap_or_default();
    let mut items = items_of(subscription);
    let mut lines = Vec::new();
    let (start, end) = current_period(subscription);
    let at = change.proration_date.unwrap_or(now);
    if change.proration_date.is_some() && !(start..=end).contains(&at) {
        return Err(ApiError::invalid_value(
            "proration_date",
            "The proration_date must be within the subscription's current period.",
        ));
    }
    let fraction = remaining_fraction(start, end, at);
    let trialing = subscription["status"] == "trialing";
    let prorate = change.proration_behavior != "none" && !trialing;
    let mut restarts_cycle = false;
    for (index, edit) in change.edits.iter().enumerate() {
        let param = |field: &str| format!("items[{index}][{field}]");
        match &edit.id {
            Some(id) => {
                let position = items
                    .iter()
                    .position(|i| i["id"] == id.as_str())
                    .ok_or_else(|| {
                        ApiError::no_such_param("subscription item", id, &param("id"))
                    })?;
                let old = items[position].clone();
                let amount = |item: &Value| {
                    item["price"]["unit_amount"].as_i64().unwrap_or_default()
                        * item["quantity"].as_i64().unwrap_or(1)
                };
                if edit.deleted {
                    if prorate {
                        let credit = -((amount(&old) as f64) * fraction).round() as i64;
                        lines.push(money_line(&old, credit, (at, end), true));
                    }
                    items.remove(position);
                    continue;
                }
                let mut new = old.clone();
                if let Some(price) = &edit.price {
                    if price["id"] != old["price"]["id"] {
                        new["price"] = price.clone();
                        // A new price resets the quantity unless one is sent.
                        new["quantity"] = json!(edit.quantity.unwrap_or(1));
                        if !same_cycle(&old["price"], price) {
                            restarts_cycle = true;
                        }
                    }
                }
                if let Some(quantity) = edit.quantity {
                    new["quantity"] = json!(quantity);
                }
                if new != old && prorate && !restarts_cycle {
                    let credit = -((amount(&old) as f64) * fraction).round() as i64;
                    let debit = ((amount(&new) as f64) * fraction).round() as i64;
                    lines.push(money_line(&old, credit, (at, end), true));
                    lines.push(money_line(&new, debit, (at, end), false));
                }
                if restarts_cycle && prorate {
                    let credit = -((amount(&old) as f64) * fraction).round() as i64;
                    lines.push(money_line(&old, credit, (at, end), true));
                }
                items[position] = new;
            }
            None => {
                if edit.deleted {
                    return Err(ApiError::parameter_missing(&param("id")));
                }
                let price = edit
                    .price
                    .clone()
                    .ok_or_else(|| ApiError::parameter_missing(&param("price")))?;
                if items.iter().any(|i| i["price"]["id"] == price["id"]) {
                    return Err(ApiError::invalid_request(
                        format!(
                            "Cannot add multiple subscription items with the same price: {}",
                            price["id"].as_str().unwrap_or_default()
                        ),
                        Some(param("price")),
                    ));
                }
                let quantity = edit.quantity.unwrap_or(1);
                let item = new_item(subscription_id, &price, quantity, start, end, now);
                if let Some(first) = items.first() {
                    if !same_cycle(&first["price"], &price) {
                        return Err(ApiError::invalid_request(
                            "Currency and interval fields must match across all plans on this subscription.",
                            Some(param("price")),
                        ));
                    }
                }
                if prorate {
                    let debit = ((price["unit_amount"].as_i64().unwrap_or_default() * quantity)
                        as f64
                        * fraction)
                        .round() as i64;
                    lines.push(money_line(&item, debit, (at, end), false));
                }
                items.push(item);
            }
        }
    }
    if items.is_empty() {
        return Err(ApiError::invalid_request(
            "A subscription must have at least one active plan. To cancel a subscription, please use the cancel API endpoint on /v1/subscriptions.",
            Some("items".into()),
        ));
    }
    if restarts_cycle {
        let first = items[0]["price"].clone();
        if items.iter().any(|i| !same_cycle(&i["price"], &first)) {
            return Err(ApiError::invalid_request(
                "Currency and interval fields must match across all plans on this subscription.",
                Some("items".into()),
            ));
        }
        let new_end = period_end(now, &first["recurring"]);
        for item in &mut items {
            item["current_period_start"] = json!(now);
            item["current_period_end"] = json!(new_end);
            lines.push(period_line(item, (now, new_end)));
        }
    }
    Ok(PlannedItems {
        items,
        lines,
        restarts_cycle,
    })
}

/// Applies planned items to `subscription` (which the caller then stores),
/// billing them as `change` says. Returns the invoice made now, if any.
/// Under `pending_if_incomplete` a payment that fails leaves the items in
/// `pending_update`; under `error_if_incomplete` it refuses with nothing changed.
pub fn bill_items(
    store: &mut Store,
    before: &Value,
    subscription: &mut Value,
    planned: PlannedItems,
    change: &ItemsChange,
    cause: &Cause,
) -> ApiResult<()> {
    let customer = before["customer"].as_str().unwrap_or_default().to_owned();
    let subscription_id = before["id"].as_str().unwrap_or_default().to_owned();
    let invoice_now = planned.restarts_cycle
        || (change.proration_behavior == "always_invoice" && !planned.lines.is_empty());
    let previous_items = subscription["items"].clone();
    let apply_items = |subscription: &mut Value, items: &[Value]| {
        subscription["items"]["data"] = json!(items);
        subscription["items"]["total_count"] = json!(items.len());
    };
    if !invoice_now {
        apply_items(subscription, &planned.items);
        if planned.restarts_cycle {
            subscription["billing_cycle_anchor"] = json!(store.now());
        }
        store.subscriptions.insert(subscription.clone());
        emit_updated(store, before, subscription, cause);
        if change.proration_behavior == "create_prorations" {
            for line in &planned.lines {
                add_pending_item(store, &customer, &subscription_id, line, cause);
            }
        }
        return Ok(());
    }
    let (_, end) = current_period(subscription);
    let invoice_id = new_id("in");
    let draft = build_invoice(
        store,
        NewInvoice {
            customer: &customer,
            subscription: Some(&subscription_id),
            subscription_metadata: subscription["metadata"].clone(),
            billing_reason: "subscription_update",
            lines: planned.lines,
            extra_lines: Vec::new(),
            currency: subscription["currency"].clone(),
            period: (store.now(), end),
        },
        Some(invoice_id.clone()),
    );
    let payment_method = payment_method_for(store, &customer, Some(before));
    let attempt = Attempt {
        payment_method: payment_method.as_deref(),
        on_session: false,
        authenticated: false,
        automatic: true,
    };
    let predicted = predict_payment(
        store,
        draft["amount_due"].as_i64().unwrap_or_default(),
        &attempt,
    );
    let paid = predicted == PaymentResult::Paid;
    if !paid && change.payment_behavior == "error_if_incomplete" {
        return Err(match predicted {
            PaymentResult::Failed(error) => error,
            _ => ApiError::card_error(
                "authentication_required",
                "Your card was declined. This transaction requires authentication.",
            ),
        });
    }
    subscription["latest_invoice"] = json!(invoice_id);
    if !paid && change.payment_behavior == "pending_if_incomplete" {
        // The items wait in pending_update until the invoice is paid.
        let (_, period_end) = current_period(before);
        let mut expires = store.now() + 23 * 3600;
        if let Some(trial_end) = before["trial_end"].as_i64().filter(|t| *t > store.now()) {
            expires = expires.min(trial_end);
        }
        expires = expires.min(period_end.max(store.now()));
        subscription["items"] = previous_items;
        subscription["pending_update"] = json!({
            "billing_cycle_anchor": if planned.restarts_cycle { json!(store.now()) } else { Value::Null },
            "expires_at": expires,
            "subscription_items": planned.items,
            "trial_end": null,
            "trial_from_plan": null,
        });
        create_invoice(store, draft, cause);
        finalize_invoice(store, &invoice_id, cause);
        let result = collect(store, &invoice_id, &attempt);
        emit_payment_outcome(store, &invoice_id, &result, cause);
        store.subscriptions.insert(subscription.clone());
        emit_updated(store, before, subscription, cause);
        return Ok(());
    }
    apply_items(subscription, &planned.items);
    if planned.restarts_cycle {
        subscription["billing_cycle_anchor"] = json!(store.now());
    }
    if !paid && matches!(before["status"].as_str(), Some("active" | "trialing")) {
        subscription["status"] = json!("past_due");
    }
    store.subscriptions.insert(subscription.clone());
    emit_updated(store, before, subscription, cause);
    create_invoice(store, draft, cause);
    finalize_invoice(store, &invoice_id, cause);
    if change.payment_behavior != "default_incomplete" || paid {
        let result = collect(store, &invoice_id, &attempt);
        emit_payment_outcome(store, &invoice_id, &result, cause);
    }
    Ok(())
}

pub fn emit_updated(store: &mut Store, before: &Value, after: &Value, cause: &Cause) {
    let previous = Store::changed_fields(before, after);
    if previous.as_object().is_some_and(|p| !p.is_empty()) {
        store.emit(
            "customer.subscription.updated",
            after,
            Some(previous),
            cause,
        );
    }
}
