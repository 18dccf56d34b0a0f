//! Invoices as dunning needs them: what this package keeps of a Stripe
//! invoice, the order of an invoice's states, and the payment issue an app
//! shows its user.

use serde::Serialize;
use serde_json::Value;

use super::snapshot::{invoice_subscription_id, SnapshotError};

/// The invoice events this package handles.
pub const INVOICE_EVENT_TYPES: [&str; 7] = [
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
];

pub const INVOICE_STATUSES: [&str; 5] = ["draft", "open", "paid", "void", "uncollectible"];

/// What this package keeps of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvoiceSnapshot {
    pub id: String,
    pub subscription_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: String,
    pub billing_reason: Option<String>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    pub amount_remaining: Option<i64>,
    pub currency: Option<String>,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<i64>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub created: i64,
    /// The customer must authenticate the payment (3-D Secure):
    /// `invoice.payment_action_required` for this attempt.
    pub action_required: bool,
}

fn text(object: &Value, name: &str) -> Option<String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 2048)
        .map(str::to_owned)
}

fn id_of(object: &Value, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(id) if !id.is_empty() && id.len() <= 255 => Some(id.clone()),
        Value::Object(expanded) => expanded
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| id.len() <= 255)
            .map(str::to_owned),
        _ => None,
    }
}

impl InvoiceSnapshot {
    /// Reads an invoice on every API version's shape; `event_type` says
    /// whether this attempt requires action.
    pub fn from_json(object: &Value, event_type: &str) -> Result<Self, SnapshotError> {
        let fail = |reason| SnapshotError {
            kind: "invoice",
            reason,
        };
        if object
            .get("object")
            .and_then(Value::as_str)
            .is_some_and(|o| o != "invoice")
        {
            return Err(fail("`object` is not \"invoice\""));
        }
        let id = text(object, "id")
            .filter(|id| id.len() <= 255)
            .ok_or(fail("`id` is missing"))?;
        let status = text(object, "status")
            .filter(|s| INVOICE_STATUSES.contains(&s.as_str()))
            .ok_or(fail("`status` is missing or unknown"))?;
        let created = object
            .get("created")
            .and_then(Value::as_i64)
            .ok_or(fail("`created` is missing"))?;
        let int = |name: &str| object.get(name).and_then(Value::as_i64);
        Ok(Self {
            id,
            subscription_id: invoice_subscription_id(object).filter(|s| s.len() <= 255),
            customer_id: id_of(object, "customer"),
            status,
            billing_reason: text(object, "billing_reason"),
            amount_due: int("amount_due"),
            amount_paid: int("amount_paid"),
            amount_remaining: int("amount_remaining"),
            currency: text(object, "currency"),
            attempt_count: int("attempt_count").unwrap_or(0).max(0),
            next_payment_attempt: int("next_payment_attempt"),
            hosted_invoice_url: text(object, "hosted_invoice_url"),
            invoice_pdf: text(object, "invoice_pdf"),
            created,
            action_required: event_type == "invoice.payment_action_required",
        })
    }
}

/// `draft` < `open` < the final states (`paid`, `void`, `uncollectible`).
pub fn status_rank(status: &str) -> u8 {
    match status {
        "draft" => 0,
        "open" => 1,
        _ => 2,
    }
}

/// An invoice state's place in its invoice's history. Events of one invoice
/// often share a second (finalized, paid, payment_succeeded), so they are
/// ordered without asking Stripe: by status rank, then attempt count, then
/// event time. A later state never goes back.
pub fn invoice_rank(status: &str, attempt_count: i64, event_created: i64) -> (u8, i64, i64) {
    (status_rank(status), attempt_count, event_created)
}

/// What an invoice event does to the stored invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceOrdering {
    /// Newer than what is stored (or nothing is): store it.
    Apply,
    /// The same state again (another event of the same attempt): keep it,
    /// adding that action is required if this event says so.
    Merge,
    /// Older: nothing changes.
    Stale,
}

pub fn decide_invoice(stored: Option<(u8, i64, i64)>, incoming: (u8, i64, i64)) -> InvoiceOrdering {
    match stored {
        None => InvoiceOrdering::Apply,
        Some(stored) if incoming > stored => InvoiceOrdering::Apply,
        Some(stored) if incoming == stored => InvoiceOrdering::Merge,
        Some(stored) if (incoming.0, incoming.1) == (stored.0, stored.1) => {
            // The same status and attempt, from an earlier event: it may still
            // carry that the attempt requires action.
            InvoiceOrdering::Merge
        }
        Some(_) => InvoiceOrdering::Stale,
    }
}

/// A payment the user must deal with: the newest open invoice of the
/// subscription that failed at least once or requires action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentIssue {
    pub invoice_id: String,
    /// `payment_failed` or `requires_action`.
    pub reason: &'static str,
    pub amount_due: Option<i64>,
    pub currency: Option<String>,
    pub attempt_count: i64,
    /// Unix seconds.
    pub next_payment_attempt: Option<i64>,
    pub hosted_invoice_url: Option<String>,
}

impl PaymentIssue {
    pub fn from_invoice(invoice: &InvoiceSnapshot) -> Option<Self> {
        if invoice.status != "open" || !(invoice.attempt_count > 0 || invoice.action_required) {
            return None;
        }
        Some(Self {
            invoice_id: invoice.id.clone(),
            reason: if invoice.action_required {
                "requires_action"
            } else {
                "payment_failed"
            },
            amount_due: invoice.amount_due,
            currency: invoice.currency.clone(),
            attempt_count: invoice.attempt_count,
            next_payment_attempt: invoice.next_payment_attempt,
            hosted_invoice_url: invoice.hosted_invoice_url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice(status: &str, attempts: i64) -> Value {
        json!({
            "id": "in_1", "object": "invoice", "status": status, "created": 100,
            "customer": "cus_1", "billing_reason": "subscription_cycle",
            "amount_due": 2000, "amount_paid": 0, "amount_remaining": 2000, "currency": "usd",
            "attempt_count": attempts, "next_payment_attempt": 5000,
            "hosted_invoice_url": "https://invoice.stripe.test/i/1", "invoice_pdf": "https://pay.stripe.test/pdf",
            "parent": { "subscription_details": { "subscription": "sub_1" } }
        })
    }

    #[test]
    fn reads_both_shapes_and_the_action() {
        let read =
            InvoiceSnapshot::from_json(&invoice("open", 1), "invoice.payment_action_required")
                .unwrap();
        assert_eq!(read.subscription_id.as_deref(), Some("sub_1"));
        assert!(read.action_required);
        let mut legacy = invoice("open", 1);
        legacy["parent"] = Value::Null;
        legacy["subscription"] = json!("sub_old");
        let read = InvoiceSnapshot::from_json(&legacy, "invoice.payment_failed").unwrap();
        assert_eq!(read.subscription_id.as_deref(), Some("sub_old"));
        assert!(!read.action_required);
        assert!(InvoiceSnapshot::from_json(&invoice("weird", 0), "invoice.paid").is_err());
    }

    #[test]
    fn a_later_state_never_goes_back() {
        let paid = invoice_rank("paid", 2, 10);
        assert_eq!(
            decide_invoice(Some(paid), invoice_rank("open", 2, 10)),
            InvoiceOrdering::Stale,
            "finalized after paid, same second"
        );
        assert_eq!(
            decide_invoice(
                Some(invoice_rank("open", 1, 10)),
                invoice_rank("open", 2, 9)
            ),
            InvoiceOrdering::Apply,
            "a later attempt wins even from an earlier-stamped event"
        );
        assert_eq!(
            decide_invoice(
                Some(invoice_rank("open", 1, 10)),
                invoice_rank("open", 1, 10)
            ),
            InvoiceOrdering::Merge
        );
        assert_eq!(
            decide_invoice(
                Some(invoice_rank("open", 1, 12)),
                invoice_rank("open", 1, 10)
            ),
            InvoiceOrdering::Merge,
            "the same attempt told by an earlier event"
        );
        assert_eq!(
            decide_invoice(
                Some(invoice_rank("uncollectible", 4, 10)),
                invoice_rank("paid", 4, 20)
            ),
            InvoiceOrdering::Apply,
            "uncollectible, then paid outside Stripe"
        );
        assert_eq!(decide_invoice(None, paid), InvoiceOrdering::Apply);
    }

    #[test]
    fn only_open_failed_or_blocked_invoices_are_issues() {
        let read = |status, attempts, kind| {
            PaymentIssue::from_invoice(
                &InvoiceSnapshot::from_json(&invoice(status, attempts), kind).unwrap(),
            )
        };
        assert_eq!(read("open", 0, "invoice.finalized"), None);
        assert_eq!(
            read("open", 2, "invoice.payment_failed").map(|i| i.reason),
            Some("payment_failed")
        );
        assert_eq!(
            read("open", 1, "invoice.payment_action_required").map(|i| i.reason),
            Some("requires_action")
        );
        assert_eq!(read("paid", 3, "invoice.paid"), None);
        assert_eq!(read("void", 3, "invoice.voided"), None);
        assert_eq!(
            read("uncollectible", 3, "invoice.marked_uncollectible"),
            None
        );
    }
}
