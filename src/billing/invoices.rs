//! Billing history: the customer's invoices, listed from Stripe.

use serde_json::Value;

use super::BillingService;
use crate::config::is_stripe_id;
use crate::error::{BillingError, BillingResult};

pub const DEFAULT_INVOICE_PAGE: u32 = 10;
pub const MAX_INVOICE_PAGE: u32 = 100;

/// One invoice of the billing history; timestamps in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSummary {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub created: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePage {
    pub invoices: Vec<InvoiceSummary>,
    pub has_more: bool,
}

fn text(object: &Value, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn summary(invoice: &Value) -> Option<InvoiceSummary> {
    let int = |name: &str| invoice.get(name).and_then(Value::as_i64);
    Some(InvoiceSummary {
        id: text(invoice, "id")?,
        number: text(invoice, "number"),
        status: text(invoice, "status"),
        amount_due: int("amount_due").unwrap_or(0),
        amount_paid: int("amount_paid").unwrap_or(0),
        currency: text(invoice, "currency").unwrap_or_default(),
        created: int("created")?,
        period_start: int("period_start"),
        period_end: int("period_end"),
        hosted_invoice_url: text(invoice, "hosted_invoice_url"),
        invoice_pdf: text(invoice, "invoice_pdf"),
    })
}

impl BillingService {
    /// `listInvoices`: the user's invoices, newest first, from Stripe
    /// (`GET /v1/invoices?customer=`). A user without a customer has none.
    pub async fn list_invoices(
        &self,
        user_id: &str,
        limit: Option<u32>,
        starting_after: Option<&str>,
    ) -> BillingResult<InvoicePage> {
        let user = self.user(user_id).await?;
        let limit = limit.unwrap_or(DEFAULT_INVOICE_PAGE);
        if !(1..=MAX_INVOICE_PAGE).contains(&limit) {
            return Err(BillingError::invalid_argument(
                "limit",
                format!("must be from 1 to {MAX_INVOICE_PAGE}"),
            ));
        }
        if starting_after.is_some_and(|id| !is_stripe_id(id)) {
            return Err(BillingError::invalid_argument(
                "startingAfter",
                "must be an invoice id",
            ));
        }
        let Some(customer) = user.stripe_customer_id.filter(|c| is_stripe_id(c)) else {
            return Ok(InvoicePage {
                invoices: Vec::new(),
                has_more: false,
            });
        };
        let mut path = format!("/v1/invoices?customer={customer}&limit={limit}");
        if let Some(after) = starting_after {
            path.push_str(&format!("&starting_after={after}"));
        }
        let page = self.stripe.get(&path).await?;
        let invoices = page
            .get("data")
            .and_then(Value::as_array)
            .map(|data| data.iter().filter_map(summary).collect())
            .unwrap_or_default();
        Ok(InvoicePage {
            invoices,
            has_more: page.get("has_more").and_then(Value::as_bool) == Some(true),
        })
    }
}
