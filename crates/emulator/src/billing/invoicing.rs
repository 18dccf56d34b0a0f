//! Invoices, their lines and pending invoice items (prorations waiting for
//! the next invoice), and finalization.

use serde_json::{json, Value};

use crate::ids::{new_id, random_token};
use crate::store::{Cause, Store};

/// One line of an invoice (or of a pending invoice item) for a subscription item.
pub struct Line {
    pub amount: i64,
    pub description: String,
    pub price: Value,
    pub quantity: i64,
    pub period: (i64, i64),
    pub subscription_item: Option<String>,
    pub proration: bool,
}

impl Line {
    fn to_json(&self, invoice: &str, subscription: Option<&str>) -> Value {
        json!({
            "id": format!("il_{}", random_token(24)),
            "object": "line_item",
            "amount": self.amount,
            "currency": self.price["currency"],
            "description": self.description,
            "discountable": !self.proration,
            "invoice": invoice,
            "livemode": false,
            "metadata": {},
            "parent": {
                "type": "subscription_item_details",
                "invoice_item_details": null,
                "subscription_item_details": {
                    "invoice_item": null,
                    "proration": self.proration,
                    "proration_details": {"credited_items": null},
                    "subscription": subscription,
                    "subscription_item": self.subscription_item,
                },
            },
            "period": {"start": self.period.0, "end": self.period.1},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": self.price["id"], "product": self.price["product"]},
                "unit_amount_decimal": self.price["unit_amount"].as_i64().map(|a| a.to_string()),
            },
            "quantity": self.quantity,
        })
    }
}

/// A line for a full period of a subscription item's price.
pub fn period_line(item: &Value, period: (i64, i64)) -> Line {
    let quantity = item["quantity"].as_i64().unwrap_or(1);
    let price = item["price"].clone();
    let amount = price["unit_amount"].as_i64().unwrap_or_default() * quantity;
    Line {
        amount,
        description: format!(
            "{quantity} × {} (at {})",
            product_name(&price),
            money(&price)
        ),
        price,
        quantity,
        period,
        subscription_item: item["id"].as_str().map(str::to_owned),
        proration: false,
    }
}

fn product_name(price: &Value) -> String {
    price["nickname"]
        .as_str()
        .or(price["product"].as_str())
        .unwrap_or("Subscription")
        .to_owned()
}

fn money(price: &Value) -> String {
    let amount = price["unit_amount"].as_i64().unwrap_or_default();
    format!(
        "{}.{:02} {} / {}",
        amount / 100,
        amount % 100,
        price["currency"].as_str().unwrap_or("usd"),
        price["recurring"]["interval"].as_str().unwrap_or("once")
    )
}

/// A pending invoice item (a proration for the next invoice); emits
/// `invoiceitem.created`.
pub fn add_pending_item(
    store: &mut Store,
    customer: &str,
    subscription: &str,
    line: &Line,
    cause: &Cause,
) -> Value {
    let item = json!({
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": line.amount,
        "currency": line.price["currency"],
        "customer": customer,
        "date": store.now(),
        "description": line.description,
        "discountable": false,
        "invoice": null,
        "livemode": false,
        "metadata": {},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription, "subscription_item": line.subscription_item},
        },
        "period": {"start": line.period.0, "end": line.period.1},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": line.price["id"], "product": line.price["product"]},
        },
        "proration": line.proration,
        "quantity": line.quantity,
    });
    store.invoice_items.insert(item.clone());
    store.emit("invoiceitem.created", &item, None, cause);
    item
}

/// The pending invoice items of a subscription, as lines, claimed for `invoice`.
pub fn claim_pending_items(store: &mut Store, subscription: &str, invoice: &str) -> Vec<Value> {
    let pending: Vec<String> = store
        .invoice_items
        .oldest_first()
        .filter(|i| {
            i["invoice"].is_null()
                && i["parent"]["subscription_details"]["subscription"] == subscription
        })
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    let mut lines = Vec::new();
    for id in pending {
        if let Some(item) = store.invoice_items.get_mut(&id) {
            item["invoice"] = json!(invoice);
            lines.push(json!({
                "id": format!("il_{}", random_token(24)),
                "object": "line_item",
                "amount": item["amount"],
                "currency": item["currency"],
                "description": item["description"],
                "invoice": invoice,
                "livemode": false,
                "metadata": {},
                "parent": {
                    "type": "subscription_item_details",
                    "subscription_item_details": {
                        "invoice_item": id,
                        "proration": item["proration"],
                        "proration_details": {"credited_items": null},
                        "subscription": subscription,
                        "subscription_item": item["parent"]["subscription_details"]["subscription_item"],
                    },
                },
                "period": item["period"],
                "pricing": item["pricing"],
                "quantity": item["quantity"],
            }));
        }
    }
    lines
}

pub struct NewInvoice<'a> {
    pub customer: &'a str,
    pub subscription: Option<&'a str>,
    pub subscription_metadata: Value,
    pub billing_reason: &'a str,
    pub lines: Vec<Line>,
    /// Lines already built (claimed pending items).
    pub extra_lines: Vec<Value>,
    pub currency: Value,
    pub period: (i64, i64),
}

/// A draft invoice (not stored, no event yet).
pub fn build_invoice(store: &Store, spec: NewInvoice<'_>, id: Option<String>) -> Value {
    let id = id.unwrap_or_else(|| new_id("in"));
    let mut lines: Vec<Value> = spec
        .lines
        .iter()
        .map(|l| l.to_json(&id, spec.subscription))
        .collect();
    lines.extend(spec.extra_lines);
    let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
    let customer = store.customers.get(spec.customer);
    let email = customer.map_or(Value::Null, |c| c["email"].clone());
    let balance = customer
        .and_then(|c| c["balance"].as_i64())
        .unwrap_or_default();
    // A negative customer balance is a credit that pays first.
    let applied = if total > 0 {
        (-balance).clamp(0, total)
    } else {
        0
    };
    let amount_due = (total - applied).max(0);
    let line_count = lines.len();
    let parent = spec.subscription.map_or(Value::Null, |subscription| {
        json!({
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": {"subscription": subscription, "metadata": spec.subscription_metadata},
        })
    });
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "kavachos-stripe emulator",
        "amount_due": amount_due,
        "amount_paid": 0,
        "amount_remaining": amount_due,
        "attempt_count": 0,
        "attempted": false,
        "auto_advance": true,
        "billing_reason": spec.billing_reason,
        "collection_method": "charge_automatically",
        "created": store.now(),
        "currency": spec.currency,
        "customer": spec.customer,
        "customer_email": email,
        "default_payment_method": null,
        "description": null,
        "ending_balance": null,
        "hosted_invoice_url": null,
        "invoice_pdf": null,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": false,
            "total_count": line_count,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": null,
        "parent": parent,
        "period_end": spec.period.1,
        "period_start": spec.period.0,
        "starting_balance": balance,
        "status": "draft",
        "status_transitions": {
            "finalized_at": null,
            "marked_uncollectible_at": null,
            "paid_at": null,
            "voided_at": null,
        },
        "subtotal": total,
        "test_clock": null,
        "total": total,
    })
}

/// Stores a draft and emits `invoice.created`.
pub fn create_invoice(store: &mut Store, invoice: Value, cause: &Cause) -> String {
    let id = invoice["id"].as_str().unwrap_or_default().to_owned();
    store.invoices.insert(invoice.clone());
    store.emit("invoice.created", &invoice, None, cause);
    id
}

/// draft -> open: a number, the hosted page, `invoice.finalized`. A credit
/// (total below zero) goes to the customer's balance.
pub fn finalize_invoice(store: &mut Store, id: &str, cause: &Cause) {
    let now = store.now();
    let base = store.base_url.clone();
    let sequence = store.invoices.len();
    let Some(invoice) = store.invoices.get_mut(id) else {
        return;
    };
    if invoice["status"] != "draft" {
        return;
    }
    let total = invoice["total"].as_i64().unwrap_or_default();
    let starting = invoice["starting_balance"].as_i64().unwrap_or_default();
    let due = invoice["amount_due"].as_i64().unwrap_or_default();
    let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
    // Credit used from the balance, or credit added to it.
    let ending = if total < 0 {
        starting + total
    } else {
        starting + (total - due)
    };
    invoice["ending_balance"] = json!(ending);
    invoice["status"] = json!("open");
    invoice["number"] = json!(format!("EMU-{sequence:04}"));
    invoice["hosted_invoice_url"] = json!(format!("{base}/invoice/{id}"));
    invoice["invoice_pdf"] = json!(format!("{base}/invoice/{id}"));
    invoice["status_transitions"]["finalized_at"] = json!(now);
    invoice["effective_at"] = json!(now);
    let snapshot = invoice.clone();
    if let Some(customer) = store.customers.get_mut(&customer) {
        customer["balance"] = json!(ending);
    }
    store.emit("invoice.finalized", &snapshot, None, cause);
}
