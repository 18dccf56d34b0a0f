//! Invoices as dunning needs them: one row per invoice, moved only forward
//! (`events::decide_invoice`), and the payment issue of a subscription.

use sqlx::Row;

use super::{BeginWrite, Claim, DbPool, Store};
use crate::error::BillingResult;
use crate::events::{decide_invoice, invoice_rank, InvoiceOrdering, InvoiceSnapshot, PaymentIssue};

/// What storing an invoice event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceApplied {
    /// The user the invoice's subscription belongs to, if stored.
    pub owner: Option<String>,
    /// Set when the owner's payment issue (on the projected subscription)
    /// appeared, changed or cleared.
    pub issue_changed: bool,
}

/// The ledger id of the notification an invoice event owes (fixed length,
/// whatever the event id's).
fn issue_marker_id(event_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(event_id.as_bytes());
    format!("kavach_issue_{}", crate::stripe::hex(&digest[..16]))
}

/// The notification an invoice event recorded, seen by a later delivery of
/// that event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueNotificationClaim {
    /// Nothing is owed (none was recorded, or it was delivered).
    Settled,
    /// Still owed, and this delivery now holds its lease.
    Owed { ledger_id: String, user_id: String },
    /// Still owed, and another delivery holds its lease.
    InProgress,
}

fn issue_from_row<R: Row>(row: &R) -> Result<PaymentIssue, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let action_required: bool = row.try_get(7)?;
    Ok(PaymentIssue {
        invoice_id: row.try_get(0)?,
        reason: if action_required {
            "requires_action"
        } else {
            "payment_failed"
        },
        amount_due: row.try_get(2)?,
        currency: row.try_get(3)?,
        attempt_count: row.try_get(4)?,
        next_payment_attempt: row.try_get(5)?,
        hosted_invoice_url: row.try_get(6)?,
    })
}

impl Store {
    /// The payment issue of a subscription (see `PaymentIssue`).
    pub async fn payment_issue(
        &self,
        subscription_id: &str,
    ) -> BillingResult<Option<PaymentIssue>> {
        let issue = dispatch!(self, pool => {
            sqlx::query(self.sql.payment_issue)
                .bind(subscription_id)
                .fetch_optional(pool)
                .await?
                .map(|row| issue_from_row(&row))
                .transpose()?
        });
        Ok(issue)
    }

    /// Takes over the notification an earlier delivery of `event_id`
    /// recorded and did not deliver. It is committed with the invoice, while
    /// the event itself is finished afterwards: a delivery that failed in
    /// between leaves the event finished and this row the only trace of what
    /// is owed.
    pub async fn claim_issue_notification(
        &self,
        event_id: &str,
        now: i64,
        lease_secs: i64,
    ) -> BillingResult<IssueNotificationClaim> {
        let ledger_id = issue_marker_id(event_id);
        Ok(
            match self.take_over_claim(&ledger_id, now, lease_secs).await? {
                Some(Claim::Notify { user_id }) => {
                    IssueNotificationClaim::Owed { ledger_id, user_id }
                }
                Some(Claim::InProgress) => IssueNotificationClaim::InProgress,
                // A marker is written owed and only ever becomes done.
                None | Some(Claim::Finished | Claim::Claimed) => IssueNotificationClaim::Settled,
            },
        )
    }

    /// After a failed delivery of `event_id`: the notification it recorded
    /// may be taken over at once by the retry.
    pub async fn release_issue_notification(&self, event_id: &str) -> BillingResult<()> {
        self.release_notification(&issue_marker_id(event_id)).await
    }

    /// Stores an invoice event's invoice unless a later state of it is
    /// stored, and says whether the owner's payment issue moved (with
    /// `notify`, also whether an earlier delivery of this event left that
    /// notification owed). The owner's
    /// row is locked first, as every writer of a user's billing state does.
    pub async fn apply_invoice(
        &self,
        invoice: &InvoiceSnapshot,
        event_id: &str,
        event_created: i64,
        notify: bool,
    ) -> BillingResult<InvoiceApplied> {
        let sql = self.sql;
        // One row per event, committed with the invoice: a delivery that dies
        // after the commit leaves the notification owed, and its retry (which
        // sees no change any more) still finds it.
        let marker = issue_marker_id(event_id);
        let now = chrono::Utc::now().timestamp();
        dispatch!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let owner: Option<String> = match &invoice.subscription_id {
                Some(subscription_id) => sqlx::query(sql.select_subscription)
                    .bind(subscription_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get::<Option<String>, _>(0))
                    .transpose()?
                    .flatten(),
                None => None,
            };
            let mut projected: Option<String> = None;
            if let Some(owner) = &owner {
                sqlx::query(sql.lock_user).bind(owner).fetch_optional(&mut *tx).await?;
                projected = sqlx::query(sql.select_user)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| super::user_from_row(&row))
                    .transpose()?
                    .and_then(|user| user.stripe_subscription_id);
            }
            let issue_before = match &projected {
                Some(id) => sqlx::query(sql.payment_issue)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| issue_from_row(&row))
                    .transpose()?,
                None => None,
            };
            let stored = sqlx::query(sql.lock_invoice)
                .bind(&invoice.id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| -> Result<(String, i64, i64, bool), sqlx::Error> {
                    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
                })
                .transpose()?;
            let incoming = invoice_rank(&invoice.status, invoice.attempt_count, event_created);
            let decision = decide_invoice(
                stored.as_ref().map(|(status, attempts, last, _)| invoice_rank(status, *attempts, *last)),
                incoming,
            );
            match decision {
                InvoiceOrdering::Stale => {}
                InvoiceOrdering::Merge => {
                    if invoice.action_required && !stored.as_ref().is_some_and(|s| s.3) {
                        sqlx::query(sql.merge_invoice_action).bind(&invoice.id).execute(&mut *tx).await?;
                    }
                }
                InvoiceOrdering::Apply => {
                    // The same attempt keeps "requires action" from the
                    // event that said so; a new attempt or state starts anew.
                    let same_attempt = stored.as_ref().is_some_and(|(status, attempts, _, _)| {
                        status == &invoice.status && *attempts == invoice.attempt_count
                    });
                    let action_required = invoice.action_required
                        || (same_attempt && stored.as_ref().is_some_and(|s| s.3));
                    sqlx::query(sql.upsert_invoice)
                        .bind(&invoice.id)
                        .bind(&invoice.subscription_id)
                        .bind(&invoice.customer_id)
                        .bind(&invoice.status)
                        .bind(&invoice.billing_reason)
                        .bind(invoice.amount_due)
                        .bind(invoice.amount_paid)
                        .bind(invoice.amount_remaining)
                        .bind(&invoice.currency)
                        .bind(invoice.attempt_count)
                        .bind(invoice.next_payment_attempt)
                        .bind(&invoice.hosted_invoice_url)
                        .bind(&invoice.invoice_pdf)
                        .bind(invoice.created)
                        .bind(action_required)
                        .bind(event_created)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let issue_after = match &projected {
                Some(id) => sqlx::query(sql.payment_issue)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| issue_from_row(&row))
                    .transpose()?,
                None => None,
            };
            let mut issue_changed = owner.is_some() && issue_before != issue_after;
            if !notify {
                // Nobody listens: nothing is owed.
            } else if let (true, Some(owner)) = (issue_changed, &owner) {
                sqlx::query(sql.record_issue_notification)
                    .bind(&marker)
                    .bind(event_created)
                    .bind(owner)
                    .bind(now + crate::events::LEASE_SECS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            } else if owner.is_some() {
                issue_changed = sqlx::query(sql.read_event)
                    .bind(&marker)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get::<String, _>(0))
                    .transpose()?
                    .is_some_and(|state| state == "notify");
            }
            tx.commit().await?;
            Ok(InvoiceApplied {
                issue_changed,
                owner,
            })
        })
    }
}
