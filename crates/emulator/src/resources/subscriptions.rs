//! `/v1/subscriptions`: create, retrieve, update (items, prorations,
//! payment behaviour, scheduled cancellation), cancel (`DELETE`), list.

use serde_json::{json, Map, Value};

use super::payment_methods::{check_attachable, resolve_payment_method};
use super::{created_filter, merge_metadata, sent_items, Call, SentItem};
use crate::billing::invoicing::{
    build_invoice, claim_pending_items, create_invoice, finalize_invoice, Line, NewInvoice,
};
use crate::billing::payments::{attempt_payment, payment_method_for, Attempt};
use crate::billing::subscription_object::{current_period, has_ended, items_of, NewSubscription};
use crate::billing::subscription_start::{start_subscription, StartSpec, StartedBy};
use crate::billing::subscription_update::{
    bill_items, emit_updated, plan_items, resolve_item_edits, ItemsChange,
};
use crate::billing::{customer_param, recurring_price};
use crate::error::{ApiError, ApiResult};
use crate::list::Page;
use crate::params::Params;
use crate::store::{Cause, Store};

const NOT_EMULATED: &[&str] = &[
    "add_invoice_items",
    "application_fee_percent",
    "automatic_tax",
    "backdate_start_date",
    "billing_cycle_anchor",
    "billing_cycle_anchor_config",
    "billing_thresholds",
    "collection_method",
    "coupon",
    "currency",
    "days_until_due",
    "default_source",
    "default_tax_rates",
    "discounts",
    "invoice_settings",
    "off_session",
    "on_behalf_of",
    "pause_collection",
    "payment_settings",
    "pending_invoice_item_interval",
    "promotion_code",
    "proration_behavior",
    "transfer_data",
    "trial_end",
    "trial_from_plan",
    "trial_settings",
    "items[*][price_data]",
    "items[*][tax_rates]",
    "items[*][discounts]",
    "items[*][billing_thresholds]",
    "items[*][metadata]",
    "items[*][plan]",
    "items[*][clear_usage]",
    "billing_mode[flexible]",
    "cancellation_details[comment]",
    "cancellation_details[feedback]",
    "description",
];

const PAYMENT_BEHAVIORS: &[&str] = &[
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
];
const PRORATION_BEHAVIORS: &[&str] = &["create_prorations", "always_invoice", "none"];

fn one_of(params: &Params, name: &str, allowed: &[&str], default: &str) -> ApiResult<String> {
    match params.str(name)? {
        None => Ok(default.to_owned()),
        Some(value) if allowed.contains(&value.as_str()) => Ok(value),
        Some(value) => Err(ApiError::invalid_value(
            name,
            format!(
                "Invalid {name}: must be one of {} (got {value})",
                allowed.join(", ")
            ),
        )),
    }
}

fn existing(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .subscriptions
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription", id))
}

/// `cancel_at`: a timestamp, `min_period_end`/`max_period_end`, or empty (clear).
pub enum CancelAt {
    Clear,
    At(i64),
    MinPeriodEnd,
    MaxPeriodEnd,
}

fn cancel_at_param(params: &Params) -> ApiResult<Option<CancelAt>> {
    Ok(match params.str("cancel_at")?.as_deref() {
        None => None,
        Some("") => Some(CancelAt::Clear),
        Some("min_period_end") => Some(CancelAt::MinPeriodEnd),
        Some("max_period_end") => Some(CancelAt::MaxPeriodEnd),
        Some(text) => Some(CancelAt::At(
            text.parse()
                .map_err(|_| ApiError::invalid_integer("cancel_at", text))?,
        )),
    })
}

fn resolve_cancel_at(
    subscription: &Value,
    cancel_at: &CancelAt,
    now: i64,
) -> ApiResult<Option<i64>> {
    let ends = items_of(subscription)
        .iter()
        .filter_map(|i| i["current_period_end"].as_i64())
        .collect::<Vec<_>>();
    Ok(match cancel_at {
        CancelAt::Clear => None,
        CancelAt::MinPeriodEnd => ends.iter().min().copied(),
        CancelAt::MaxPeriodEnd => ends.iter().max().copied(),
        CancelAt::At(at) if *at <= now => {
            return Err(ApiError::invalid_value(
                "cancel_at",
                "cancel_at must be in the future.",
            ))
        }
        CancelAt::At(at) => Some(*at),
    })
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let customer = p.required_str("customer")?;
    let edits = sent_items(p, "items")?;
    let trial_days = p.int("trial_period_days")?;
    let metadata = p.map("metadata")?;
    let default_pm = p.str("default_payment_method")?.filter(|s| !s.is_empty());
    let payment_behavior = one_of(p, "payment_behavior", PAYMENT_BEHAVIORS, "allow_incomplete")?;
    let cancel_at_period_end = p.bool("cancel_at_period_end")?.unwrap_or(false);
    let cancel_at = cancel_at_param(p)?;
    let default_mode = store.settings.billing_mode.clone();
    let billing_mode = one_of(
        p,
        "billing_mode[type]",
        &["classic", "flexible"],
        &default_mode,
    )?;
    p.finish(NOT_EMULATED)?;
    if payment_behavior == "pending_if_incomplete" {
        return Err(ApiError::invalid_value(
            "payment_behavior",
            "payment_behavior=pending_if_incomplete can only be used when updating a subscription.",
        ));
    }
    customer_param(store, &customer, "customer")?;
    if edits.is_empty() {
        return Err(ApiError::parameter_missing("items"));
    }
    let mut items = Vec::new();
    for (index, sent) in edits.into_iter().enumerate() {
        let SentItem {
            id,
            price,
            quantity,
            deleted,
        } = sent;
        if id.is_some() || deleted {
            return Err(ApiError::parameter_unknown(&format!(
                "items[{index}][{}]",
                if deleted { "deleted" } else { "id" }
            )));
        }
        let price_id =
            price.ok_or_else(|| ApiError::parameter_missing(&format!("items[{index}][price]")))?;
        let price = recurring_price(store, &price_id, &format!("items[{index}][price]"))?;
        if let Some((first, _)) = items.first() {
            if !crate::billing::periods::same_cycle(first, &price)
                || first["currency"] != price["currency"]
            {
                return Err(ApiError::invalid_request(
                    "Currency and interval fields must match across all plans on this subscription.",
                    Some(format!("items[{index}][price]")),
                ));
            }
        }
        items.push((price, quantity.unwrap_or(1)));
    }
    if trial_days.is_some_and(|d| !(1..=730).contains(&d)) {
        return Err(ApiError::invalid_value(
            "trial_period_days",
            "trial_period_days must be between 1 and 730.",
        ));
    }
    let now = store.now();
    let cancel_at = match &cancel_at {
        Some(CancelAt::At(at)) if *at <= now => {
            return Err(ApiError::invalid_value(
                "cancel_at",
                "cancel_at must be in the future.",
            ))
        }
        Some(CancelAt::At(at)) => Some(*at),
        Some(CancelAt::Clear) | None => None,
        Some(_) => {
            return Err(ApiError::invalid_value(
                "cancel_at",
                "min_period_end and max_period_end apply to existing subscriptions.",
            ))
        }
    };
    if let Some(pm) = &default_pm {
        check_attachable(store, pm, "default_payment_method")?;
    }
    let default_payment_method = match default_pm {
        Some(pm) => Some(resolve_payment_method(
            store,
            &pm,
            &customer,
            "default_payment_method",
            &call.cause,
        )?),
        None => None,
    };
    let metadata: Map<String, Value> = merge_metadata(&json!({}), metadata)
        .as_object()
        .cloned()
        .unwrap_or_default();
    start_subscription(
        store,
        StartSpec {
            subscription: NewSubscription {
                customer: &customer,
                items,
                trial_end: trial_days.map(|d| now + d * 86_400),
                metadata,
                default_payment_method,
                billing_mode: &billing_mode,
                now,
            },
            payment_behavior: &payment_behavior,
            cancel_at_period_end,
            cancel_at,
            started_by: StartedBy::Api,
        },
        &call.cause,
    )
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    existing(store, call.id())
}

/// Parameters `pending_if_incomplete` allows (Stripe refuses the others).
const PENDING_ALLOWED: &[&str] = &[
    "items",
    "proration_behavior",
    "proration_date",
    "payment_behavior",
    "cancel_at_period_end",
    "expand",
];

/// An update, as the API or the portal asks for it.
pub struct SubscriptionChange {
    pub items: Vec<SentItem>,
    pub proration_behavior: String,
    pub proration_date: Option<i64>,
    pub payment_behavior: String,
    pub cancel_at_period_end: Option<bool>,
    pub cancel_at: Option<CancelAt>,
    pub metadata: Option<Vec<(String, String)>>,
    pub default_payment_method: Option<String>,
}

impl SubscriptionChange {
    /// A change that does nothing yet (the portal fills in one field).
    pub fn none() -> Self {
        Self {
            items: Vec::new(),
            proration_behavior: "create_prorations".into(),
            proration_date: None,
            payment_behavior: "allow_incomplete".into(),
            cancel_at_period_end: None,
            cancel_at: None,
            metadata: None,
            default_payment_method: None,
        }
    }
}

pub fn update(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let change = SubscriptionChange {
        items: sent_items(p, "items")?,
        proration_behavior: one_of(
            p,
            "proration_behavior",
            PRORATION_BEHAVIORS,
            "create_prorations",
        )?,
        proration_date: p.int("proration_date")?,
        payment_behavior: one_of(p, "payment_behavior", PAYMENT_BEHAVIORS, "allow_incomplete")?,
        cancel_at_period_end: p.bool("cancel_at_period_end")?,
        cancel_at: cancel_at_param(p)?,
        metadata: p.map("metadata")?,
        default_payment_method: p.str("default_payment_method")?,
    };
    let not_emulated: Vec<&str> = NOT_EMULATED
        .iter()
        .copied()
        .filter(|n| *n != "proration_behavior")
        .collect();
    p.finish(&not_emulated)?;
    if change.payment_behavior == "pending_if_incomplete" {
        if let Some(other) = p
            .pairs()
            .iter()
            .map(|pair| pair.path[0].as_str())
            .find(|name| !PENDING_ALLOWED.contains(name))
        {
            return Err(ApiError::invalid_request(
                format!("The parameter `{other}` cannot be passed when creating a pending update. Only items, proration_behavior, proration_date and cancel_at_period_end can be."),
                Some(other.to_owned()),
            ));
        }
    }
    change_subscription(store, call.id(), change, &call.cause)
}

/// Applies an update: validates everything first, then changes the
/// subscription, bills its items and emits the events.
pub fn change_subscription(
    store: &mut Store,
    id: &str,
    change: SubscriptionChange,
    cause: &Cause,
) -> ApiResult<Value> {
    let before = existing(store, id)?;
    if has_ended(&before) {
        return Err(ApiError::state_conflict(
            "A canceled subscription can only update its cancellation_details.",
        ));
    }
    let now = store.now();
    let mut after = before.clone();
    let cancel_at_value = match &change.cancel_at {
        Some(c) => Some(resolve_cancel_at(&before, c, now)?),
        None => None,
    };
    let edits_resolved = resolve_item_edits(store, change.items, "items")?;
    let items_change = ItemsChange {
        edits: edits_resolved,
        proration_behavior: change.proration_behavior,
        proration_date: change.proration_date,
        payment_behavior: change.payment_behavior,
    };
    let planned = if items_change.edits.is_empty() {
        None
    } else {
        Some(plan_items(store, &before, &items_change)?)
    };
    let default_pm = change.default_payment_method;
    if let Some(pm) = default_pm.as_deref().filter(|pm| !pm.is_empty()) {
        check_attachable(store, pm, "default_payment_method")?;
    }
    // Everything is validated: from here on the update happens.
    let customer = before["customer"].as_str().unwrap_or_default().to_owned();
    match default_pm {
        Some(pm) if pm.is_empty() => after["default_payment_method"] = Value::Null,
        Some(pm) => {
            let attached =
                resolve_payment_method(store, &pm, &customer, "default_payment_method", cause)?;
            after["default_payment_method"] = json!(attached);
        }
        None => {}
    }
    after["metadata"] = merge_metadata(&before["metadata"], change.metadata);
    let (_, period_end) = current_period(&before);
    if let Some(flag) = change.cancel_at_period_end {
        after["cancel_at_period_end"] = json!(flag);
        after["cancel_at"] = if flag { json!(period_end) } else { Value::Null };
    }
    if let Some(at) = cancel_at_value {
        after["cancel_at"] = json!(at);
        // A cancel_at at the period's end is what classic billing calls
        // cancel_at_period_end.
        let classic = before["billing_mode"]["type"] == "classic";
        after["cancel_at_period_end"] = json!(classic && at == Some(period_end));
    }
    let scheduled = |s: &Value| s["cancel_at_period_end"] == true || !s["cancel_at"].is_null();
    if scheduled(&after) && !scheduled(&before) {
        after["canceled_at"] = json!(now);
    } else if !scheduled(&after) {
        after["canceled_at"] = Value::Null;
    }
    match planned {
        Some(planned) => {
            let mut staged = after.clone();
            bill_items(store, &before, &mut staged, planned, &items_change, cause)?;
            existing(store, id)
        }
        None => {
            if after != before {
                store.subscriptions.insert(after.clone());
                emit_updated(store, &before, &after, cause);
            }
            Ok(after)
        }
    }
}

/// `DELETE /v1/subscriptions/:id`: cancels now.
pub fn cancel(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let cancellation = Cancellation {
        invoice_now: p.bool("invoice_now")?.unwrap_or(false),
        prorate: p.bool("prorate")?.unwrap_or(false),
        comment: p
            .str("cancellation_details[comment]")?
            .filter(|c| !c.is_empty()),
        feedback: p
            .str("cancellation_details[feedback]")?
            .filter(|f| !f.is_empty()),
    };
    p.finish(&[])?;
    cancel_now(store, call.id(), &cancellation, &call.cause)
}

/// How an immediate cancellation settles.
#[derive(Default)]
pub struct Cancellation {
    pub invoice_now: bool,
    pub prorate: bool,
    pub comment: Option<String>,
    pub feedback: Option<String>,
}

/// Cancels now: `customer.subscription.deleted`, and with `invoice_now` a
/// final invoice for what is pending.
pub fn cancel_now(
    store: &mut Store,
    id: &str,
    how: &Cancellation,
    cause: &Cause,
) -> ApiResult<Value> {
    let before = existing(store, id)?;
    if has_ended(&before) {
        return Err(ApiError::state_conflict(format!(
            "This subscription has already been canceled: {id}"
        )));
    }
    let now = store.now();
    let customer = before["customer"].as_str().unwrap_or_default().to_owned();
    if how.prorate && before["status"] == "active" {
        let (start, end) = current_period(&before);
        let fraction = crate::billing::periods::remaining_fraction(start, end, now);
        for item in items_of(&before) {
            let amount = item["price"]["unit_amount"].as_i64().unwrap_or_default()
                * item["quantity"].as_i64().unwrap_or(1);
            let mut line = crate::billing::invoicing::period_line(&item, (now, end));
            line.amount = -((amount as f64) * fraction).round() as i64;
            line.proration = true;
            line.description = format!("Unused time on {}", line.description);
            crate::billing::invoicing::add_pending_item(store, &customer, id, &line, cause);
        }
    }
    let mut after = before.clone();
    after["status"] = json!("canceled");
    after["canceled_at"] = json!(now);
    after["ended_at"] = json!(now);
    after["pending_update"] = Value::Null;
    after["cancellation_details"] = json!({
        "comment": how.comment,
        "feedback": how.feedback,
        "reason": "cancellation_requested",
    });
    store.subscriptions.insert(after.clone());
    store.emit("customer.subscription.deleted", &after, None, cause);
    if how.invoice_now {
        final_invoice(store, &after, cause)?;
    }
    Ok(after)
}

/// `invoice_now`: what is pending on the subscription, invoiced and charged.
fn final_invoice(store: &mut Store, subscription: &Value, cause: &Cause) -> ApiResult<()> {
    let subscription_id = subscription["id"].as_str().unwrap_or_default().to_owned();
    let customer = subscription["customer"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let invoice_id = crate::ids::new_id("in");
    let lines = claim_pending_items(store, &subscription_id, &invoice_id);
    if lines.is_empty() {
        return Ok(());
    }
    let now = store.now();
    let draft = build_invoice(
        store,
        NewInvoice {
            customer: &customer,
            subscription: Some(&subscription_id),
            subscription_metadata: subscription["metadata"].clone(),
            billing_reason: "subscription_cycle",
            lines: Vec::<Line>::new(),
            extra_lines: lines,
            currency: subscription["currency"].clone(),
            period: (now, now),
        },
        Some(invoice_id.clone()),
    );
    create_invoice(store, draft, cause);
    finalize_invoice(store, &invoice_id, cause);
    let pm = payment_method_for(store, &customer, Some(subscription));
    attempt_payment(
        store,
        &invoice_id,
        &Attempt {
            payment_method: pm.as_deref(),
            on_session: false,
            authenticated: false,
            automatic: true,
        },
        cause,
    );
    Ok(())
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let customer = p.str("customer")?;
    let status = one_of(
        p,
        "status",
        &[
            "all",
            "active",
            "canceled",
            "ended",
            "incomplete",
            "incomplete_expired",
            "past_due",
            "paused",
            "trialing",
            "unpaid",
        ],
        "",
    )?;
    let price = p.str("price")?;
    let test_clock = p.str("test_clock")?.filter(|s| !s.is_empty());
    let created = created_filter(p)?;
    let page = Page::read(p)?;
    p.finish(&[
        "collection_method",
        "current_period_end",
        "current_period_start",
        "automatic_tax",
        "plan",
    ])?;
    let matching: Vec<Value> = store
        .subscriptions
        .newest_first()
        .filter(|s| customer.as_deref().is_none_or(|c| s["customer"] == c))
        // A test clock's subscriptions show only when asked for by clock or customer.
        .filter(|s| match &test_clock {
            Some(clock) => s["test_clock"] == clock.as_str(),
            None => customer.is_some() || s["test_clock"].is_null(),
        })
        .filter(|s| match status.as_str() {
            "" => s["status"] != "canceled",
            "all" => true,
            "ended" => has_ended(s),
            other => s["status"] == other,
        })
        .filter(|s| {
            price
                .as_deref()
                .is_none_or(|price| items_of(s).iter().any(|i| i["price"]["id"] == price))
        })
        .filter(|s| created.contains(s))
        .cloned()
        .collect();
    page.list(matching, "subscription", call.path)
}
