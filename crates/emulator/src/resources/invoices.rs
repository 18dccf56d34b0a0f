//! `/v1/invoices`: retrieve, list, pay, create_preview.

use serde_json::{json, Value};

use super::payment_methods::{check_attachable, resolve_payment_method};
use super::{created_filter, sent_items, Call};
use crate::billing::customer_param;
use crate::billing::invoicing::{build_invoice, finalize_invoice, period_line, Line, NewInvoice};
use crate::billing::payments::{
    attempt_payment, payment_method_for, settle_subscription, Attempt, PaymentResult,
};
use crate::billing::periods::period_end;
use crate::billing::subscription_object::current_period;
use crate::billing::subscription_update::{plan_items, resolve_item_edits, ItemsChange};
use crate::error::{ApiError, ApiResult};
use crate::ids::random_token;
use crate::list::Page;
use crate::store::{Cause, Store};

fn existing(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .invoices
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("invoice", id))
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
    let test_clock = p.str("test_clock")?.filter(|s| !s.is_empty());
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&["collection_method", "due_date", "customer_account"])?;
    if let Some(status) = &status {
        if !["draft", "open", "paid", "uncollectible", "void"].contains(&status.as_str()) {
            return Err(ApiError::invalid_value(
                "status",
                format!("Invalid status: must be one of draft, open, paid, uncollectible, or void (got {status})"),
            ));
        }
    }
    let matching: Vec<Value> = store
        .invoices
        .newest_first()
        .filter(|i| customer.as_deref().is_none_or(|c| i["customer"] == c))
        .filter(|i| match &test_clock {
            Some(clock) => i["test_clock"] == clock.as_str(),
            None => customer.is_some() || subscription.is_some() || i["test_clock"].is_null(),
        })
        .filter(|i| {
            subscription
                .as_deref()
                .is_none_or(|s| i["parent"]["subscription_details"]["subscription"] == s)
        })
        .filter(|i| status.as_deref().is_none_or(|s| i["status"] == s))
        .filter(|i| created.contains(i))
        .cloned()
        .collect();
    page.list(matching, "invoice", call.path)
}

/// Pays an open invoice with a card; shared by `/pay` and the hosted invoice page.
pub fn pay_invoice(
    store: &mut Store,
    invoice_id: &str,
    payment_method: Option<String>,
    on_session: bool,
    authenticated: bool,
    cause: &Cause,
) -> ApiResult<Value> {
    let invoice = existing(store, invoice_id)?;
    match invoice["status"].as_str() {
        Some("paid") => {
            return Err(ApiError::invalid_with_code(
                "invoice_already_paid",
                "Invoice is already paid",
                None,
            ))
        }
        Some("void") => return Err(ApiError::state_conflict("You cannot pay a voided invoice.")),
        Some("draft") => finalize_invoice(store, invoice_id, cause),
        _ => {}
    }
    let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
    let subscription = invoice["parent"]["subscription_details"]["subscription"]
        .as_str()
        .and_then(|s| store.subscriptions.get(s))
        .cloned();
    let pm = match payment_method {
        Some(pm) => Some(resolve_payment_method(
            store,
            &pm,
            &customer,
            "payment_method",
            cause,
        )?),
        None => payment_method_for(store, &customer, subscription.as_ref()),
    };
    let result = attempt_payment(
        store,
        invoice_id,
        &Attempt {
            payment_method: pm.as_deref(),
            on_session,
            authenticated,
            automatic: false,
        },
        cause,
    );
    match result {
        PaymentResult::Paid => {
            settle_subscription(store, invoice_id, cause);
            existing(store, invoice_id)
        }
        PaymentResult::Failed(error) => Err(error),
        PaymentResult::RequiresAction => Err(ApiError::card_error(
            "invoice_payment_intent_requires_action",
            "This payment requires additional user action before it can be completed successfully. Payment can be completed using the PaymentIntent associated with the invoice, or on its hosted page.",
        )),
    }
}

pub fn pay(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let payment_method = p.str("payment_method")?.filter(|s| !s.is_empty());
    let off_session = p.bool("off_session")?.unwrap_or(true);
    let out_of_band = p.bool("paid_out_of_band")?.unwrap_or(false);
    p.finish(&["forgive", "mandate", "source"])?;
    existing(store, call.id())?;
    if let Some(pm) = &payment_method {
        check_attachable(store, pm, "payment_method")?;
    }
    if out_of_band {
        let invoice = existing(store, call.id())?;
        if invoice["status"] != "open"
            && invoice["status"] != "draft"
            && invoice["status"] != "uncollectible"
        {
            return Err(ApiError::state_conflict(format!(
                "You cannot pay an invoice that is {}.",
                invoice["status"].as_str().unwrap_or_default()
            )));
        }
        if invoice["status"] == "draft" {
            finalize_invoice(store, call.id(), &call.cause);
        }
        let now = store.now();
        if let Some(invoice) = store.invoices.get_mut(call.id()) {
            invoice["status"] = json!("paid");
            invoice["paid_out_of_band"] = json!(true);
            invoice["amount_remaining"] = json!(0);
            invoice["status_transitions"]["paid_at"] = json!(now);
        }
        let snapshot = existing(store, call.id())?;
        store.emit("invoice.paid", &snapshot, None, &call.cause);
        settle_subscription(store, call.id(), &call.cause);
        return existing(store, call.id());
    }
    pay_invoice(
        store,
        call.id(),
        payment_method,
        !off_session,
        false,
        &call.cause,
    )
}

const PREVIEW_NOT_EMULATED: &[&str] = &[
    "automatic_tax",
    "coupon",
    "currency",
    "customer_details",
    "discounts",
    "invoice_items",
    "issuer",
    "on_behalf_of",
    "preview_mode",
    "schedule",
    "schedule_details",
    "subscription_details[billing_cycle_anchor]",
    "subscription_details[cancel_at]",
    "subscription_details[cancel_at_period_end]",
    "subscription_details[cancel_now]",
    "subscription_details[default_tax_rates]",
    "subscription_details[resume_at]",
    "subscription_details[start_date]",
    "subscription_details[trial_end]",
    "subscription_details[items][*][price_data]",
    "subscription_details[items][*][metadata]",
    "subscription_details[items][*][tax_rates]",
    "subscription_details[items][*][discounts]",
];

/// `POST /v1/invoices/create_preview`: what the next invoice would be (or,
/// with `always_invoice` or an interval change, what is invoiced now).
pub fn create_preview(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let customer = p.str("customer")?.filter(|s| !s.is_empty());
    let subscription_id = p.str("subscription")?.filter(|s| !s.is_empty());
    let edits = sent_items(p, "subscription_details[items]")?;
    let proration_behavior = p
        .str("subscription_details[proration_behavior]")?
        .unwrap_or_else(|| "create_prorations".to_owned());
    let proration_date = p.int("subscription_details[proration_date]")?;
    p.finish(PREVIEW_NOT_EMULATED)?;
    if !["create_prorations", "always_invoice", "none"].contains(&proration_behavior.as_str()) {
        return Err(ApiError::invalid_value(
            "subscription_details[proration_behavior]",
            "Invalid subscription_details[proration_behavior]: must be one of create_prorations, always_invoice, or none",
        ));
    }
    let Some(subscription_id) = subscription_id else {
        let customer = customer.ok_or_else(|| ApiError::parameter_missing("customer"))?;
        customer_param(store, &customer, "customer")?;
        return Err(ApiError::invalid_with_code(
            "invoice_upcoming_none",
            format!("No upcoming invoices for customer: {customer}"),
            None,
        ));
    };
    let subscription = store
        .subscriptions
        .get(&subscription_id)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("subscription", &subscription_id, "subscription"))?;
    let owner = subscription["customer"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(customer) = &customer {
        if *customer != owner {
            return Err(ApiError::invalid_request(
                format!(
                    "The subscription {subscription_id} does not belong to customer {customer}."
                ),
                Some("subscription".into()),
            ));
        }
    }
    if proration_date.is_some() && (edits.is_empty() || proration_behavior == "none") {
        return Err(ApiError::invalid_request(
            "subscription_details[proration_date] needs subscription_details[items] and a proration_behavior other than none.",
            Some("subscription_details[proration_date]".into()),
        ));
    }
    let item_edits = resolve_item_edits(store, edits, "subscription_details[items]")?;
    let change = ItemsChange {
        edits: item_edits,
        proration_behavior: proration_behavior.clone(),
        proration_date,
        payment_behavior: "allow_incomplete".into(),
    };
    let planned = plan_items(store, &subscription, &change)?;
    let (_, end) = current_period(&subscription);
    let invoiced_now = planned.restarts_cycle || proration_behavior == "always_invoice";
    let mut lines: Vec<Line> = Vec::new();
    let mut extra = Vec::new();
    let period;
    if invoiced_now {
        period = (store.now(), end);
        lines = planned.lines;
    } else {
        // The next invoice: pending items, these prorations, the next period.
        extra = store
            .invoice_items
            .oldest_first()
            .filter(|i| i["invoice"].is_null() && i["parent"]["subscription_details"]["subscription"] == subscription_id.as_str())
            .map(|i| {
                json!({
                    "object": "line_item",
                    "amount": i["amount"],
                    "currency": i["currency"],
                    "description": i["description"],
                    "parent": {"type": "subscription_item_details", "subscription_item_details": {
                        "invoice_item": i["id"], "proration": i["proration"],
                        "subscription": subscription_id, "subscription_item": i["parent"]["subscription_details"]["subscription_item"],
                    }},
                    "period": i["period"],
                    "quantity": i["quantity"],
                })
            })
            .collect();
        if proration_behavior == "create_prorations" {
            lines.extend(planned.lines);
        }
        for item in &planned.items {
            let next_end = period_end(end, &item["price"]["recurring"]);
            lines.push(period_line(item, (end, next_end)));
        }
        period = (end, end);
    }
    let mut preview = build_invoice(
        store,
        NewInvoice {
            customer: &owner,
            subscription: Some(&subscription_id),
            subscription_metadata: subscription["metadata"].clone(),
            billing_reason: "upcoming",
            lines,
            extra_lines: extra,
            currency: subscription["currency"].clone(),
            period,
        },
        Some(format!("upcoming_in_{}", random_token(24))),
    );
    if !invoiced_now {
        preview["created"] = json!(end);
        preview["next_payment_attempt"] = json!(end + 3600);
    }
    Ok(preview)
}

/// `POST /v1/invoices/:id/void`: open (or uncollectible) -> void.
pub fn void(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    let invoice = existing(store, call.id())?;
    if !matches!(invoice["status"].as_str(), Some("open" | "uncollectible")) {
        return Err(ApiError::state_conflict(format!(
            "You can only void an open or uncollectible invoice; this one is {}.",
            invoice["status"].as_str().unwrap_or_default()
        )));
    }
    if invoice["status"] == "uncollectible" {
        if let Some(stored) = store.invoices.get_mut(call.id()) {
            stored["status"] = json!("open");
        }
    }
    crate::billing::schedule::void_invoice(store, call.id(), &call.cause);
    existing(store, call.id())
}

/// `POST /v1/invoices/:id/mark_uncollectible`: open -> uncollectible.
pub fn mark_uncollectible(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    mark_invoice_uncollectible(store, call.id(), &call.cause)
}

pub fn mark_invoice_uncollectible(store: &mut Store, id: &str, cause: &Cause) -> ApiResult<Value> {
    let now = store.now();
    let invoice = store
        .invoices
        .get_mut(id)
        .ok_or_else(|| ApiError::no_such("invoice", id))?;
    if invoice["status"] != "open" {
        return Err(ApiError::state_conflict(format!(
            "You can only mark an open invoice as uncollectible; this one is {}.",
            invoice["status"].as_str().unwrap_or_default()
        )));
    }
    invoice["status"] = json!("uncollectible");
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["marked_uncollectible_at"] = json!(now);
    let snapshot = invoice.clone();
    store.emit("invoice.marked_uncollectible", &snapshot, None, cause);
    Ok(snapshot)
}
