//! What the app does to a subscription after checkout: change plan (and
//! preview it), cancel, resume, and sync from Stripe.
//!
//! Every object Stripe returns is stored at once, as the truth as of Stripe's
//! clock (the answer's `Date`), through the same ordering rules as webhooks:
//! an event created in an earlier second never overwrites it, one created in
//! the same second is re-fetched. A change that moves the user's projection
//! commits an owed notification in the ledger first; the call then awaits
//! `onSubscriptionChange`, and if that throws the call fails with
//! `subscription_listener_failed` while the notification stays owed, to be
//! delivered by the next delivery, sync or call for that user.

use serde::Serialize;
use serde_json::Value;

use super::plans::{plan_view, Plan};
use super::status::has_ended;
use super::{string_field, BillingService, PriceChoice, SubscriptionView};
use crate::config::is_stripe_id;
use crate::error::{BillingError, BillingResult};
use crate::events::{SubscriptionSnapshot, LEASE_SECS};
use crate::store::{
    ApplyOutcome, Fetched, SubscriptionChange, SubscriptionRecord, SubscriptionWrite, UserRecord,
};
use crate::stripe::{random_idempotency_key, FormBody, StripeResponse};

/// Stripe's page size limit for lists.
const LIST_PAGE_SIZE: u32 = 100;
/// A customer with more subscriptions than this is not walked further by a sync.
const MAX_SYNC_PAGES: usize = 20;

pub const PRORATION_BEHAVIORS: [&str; 3] = ["always_invoice", "create_prorations", "none"];

/// `changePlan` / `previewPlanChange` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub price: PriceChoice,
    pub quantity: Option<u32>,
    /// `always_invoice` (default), `create_prorations` or `none`.
    pub proration_behavior: Option<String>,
    pub proration_date: Option<i64>,
    pub subscription_id: Option<String>,
}

/// A plan change waiting for its payment (`payment_behavior=pending_if_incomplete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpdate {
    pub invoice_id: Option<String>,
    pub hosted_invoice_url: Option<String>,
    /// Unix seconds; after it Stripe drops the change and voids the invoice.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanChangeResult {
    pub subscription: SubscriptionView,
    pub pending: Option<PendingUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLine {
    pub description: Option<String>,
    pub amount: i64,
    pub proration: bool,
    pub price_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanChangePreview {
    pub amount_due: i64,
    pub currency: String,
    /// Pass it to `changePlan` to be charged what was previewed.
    pub proration_date: i64,
    pub lines: Vec<PreviewLine>,
}

/// A stored subscription as the subscription view shows it.
pub fn record_view(record: &SubscriptionRecord, plans: &[Plan]) -> SubscriptionView {
    SubscriptionView {
        id: record.id.clone(),
        status: record.status.clone(),
        price_id: record.price_id.clone(),
        current_period_end: record.current_period_end,
        cancel_at_period_end: record.cancel_at_period_end || record.cancel_at.is_some(),
        plan: plan_view(plans, record.price_id.as_deref()),
        payment_issue: None,
    }
}

fn subscription_path(id: &str) -> BillingResult<String> {
    if !is_stripe_id(id) {
        return Err(BillingError::invalid_argument(
            "subscriptionId",
            "must be a Stripe subscription id",
        ));
    }
    Ok(format!("/v1/subscriptions/{id}"))
}

fn text(object: &Value, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// The pending change in an update's answer (`latest_invoice` expanded).
fn pending_update(subscription: &Value) -> Option<PendingUpdate> {
    let pending = subscription
        .get("pending_update")
        .filter(|p| p.is_object())?;
    let invoice = subscription.get("latest_invoice");
    let (invoice_id, hosted_invoice_url) = match invoice {
        Some(Value::String(id)) => (Some(id.clone()), None),
        Some(object @ Value::Object(_)) => (text(object, "id"), text(object, "hosted_invoice_url")),
        _ => (None, None),
    };
    Some(PendingUpdate {
        invoice_id,
        hosted_invoice_url,
        expires_at: pending.get("expires_at").and_then(Value::as_i64),
    })
}

impl BillingService {
    /// The subscription a call acts on: `subscription_id` when given (it must
    /// be the user's), else the user's projected one. A projection with no
    /// row of ours (written by kavachOS's own plugin) is fetched and stored.
    async fn target_subscription(
        &self,
        user: &UserRecord,
        subscription_id: Option<&str>,
    ) -> BillingResult<SubscriptionRecord> {
        let id = match subscription_id {
            Some(id) => {
                subscription_path(id)?;
                let owned = self
                    .store
                    .subscription_facts(id)
                    .await?
                    .is_some_and(|facts| facts.user_id.as_deref() == Some(user.id.as_str()));
                if !owned {
                    return Err(BillingError::NoSubscription(format!(
                        "subscription `{}` is not one of this user's",
                        crate::error::echo(id)
                    )));
                }
                id.to_owned()
            }
            None => user.stripe_subscription_id.clone().ok_or_else(|| {
                BillingError::NoSubscription("the user has no subscription".into())
            })?,
        };
        if let Some(record) = self.store.subscription_record(&id).await? {
            if record.items.iter().any(|item| item.id.is_some()) || has_ended(&record.status) {
                return Ok(record);
            }
        }
        // Stored before item ids were kept, or never stored by this package.
        let answer = self.stripe.get_dated(&subscription_path(&id)?).await?;
        self.store_returned(&user.id, &answer, "fetch").await?;
        self.store
            .subscription_record(&id)
            .await?
            .ok_or_else(|| BillingError::Internal("a fetched subscription was not stored".into()))
    }

    /// Stores a subscription Stripe returned to one of the app's calls, as of
    /// the answer's `Date`, and notifies the app if the user's projection
    /// moved. Returns the stored snapshot.
    async fn store_returned(
        &self,
        user_id: &str,
        answer: &StripeResponse,
        action: &str,
    ) -> BillingResult<SubscriptionSnapshot> {
        let snapshot = SubscriptionSnapshot::from_json(&answer.body)
            .map_err(|e| BillingError::StripeUnreachable(format!("Stripe answered with {e}")))?;
        self.store_snapshot(user_id, snapshot.clone(), answer.date, action)
            .await?;
        Ok(snapshot)
    }

    /// One ledger row per app change, so an owed notification has a home.
    async fn store_snapshot(
        &self,
        user_id: &str,
        snapshot: SubscriptionSnapshot,
        as_of: Option<i64>,
        action: &str,
    ) -> BillingResult<Option<String>> {
        let now = chrono::Utc::now().timestamp();
        let token = random_idempotency_key();
        let ledger_id = format!("kavach_app_{}", token.trim_start_matches("kavach-"));
        let claimed = self
            .store
            .claim_event(
                &ledger_id,
                &format!("app.{action}"),
                as_of.unwrap_or(now),
                now,
                LEASE_SECS,
            )
            .await;
        if let Err(error) = claimed {
            // The claim may have committed before its answer was lost.
            self.release_claim(&ledger_id).await;
            return Err(error);
        }
        let write = SubscriptionWrite {
            event_id: &ledger_id,
            event_created: as_of.unwrap_or(0),
            user_id: Some(user_id),
            change: SubscriptionChange::Snapshot {
                snapshot,
                fetched: Some(Fetched { as_of }),
            },
            notify: self.listener.is_some(),
        };
        let applied = match self.store.apply_subscription(&write).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Nothing was stored, or the commit's answer was lost: the
                // claim must not stay behind, nor hold an owed notification.
                self.release_claim(&ledger_id).await;
                return Err(error);
            }
        };
        match applied {
            ApplyOutcome::Applied {
                changed_user: Some(changed),
            } if self.listener.is_some() => {
                if let Err(error) = self.processor().deliver(&ledger_id, &changed).await {
                    // The notification stays owed; the user's next call or
                    // sync delivers it, which it may only once the lease is
                    // given up (a throwing callback has given it up already).
                    self.release_claim(&ledger_id).await;
                    return Err(error);
                }
                Ok(Some(changed))
            }
            ApplyOutcome::Applied { changed_user } => Ok(changed_user),
            outcome => Err(BillingError::Internal(format!(
                "a subscription Stripe returned was not stored ({outcome:?})"
            ))),
        }
    }

    /// Releases an app call's ledger row after a failure: a claim still
    /// `processing` is deleted, and a notification it owes gives up its
    /// lease. Unlike a webhook's, no redelivery comes back to take either
    /// over once its lease expires, so a lost connection is retried (six
    /// attempts over about 5 s, as migrations do) rather than leaving the row
    /// `processing`, or owed yet out of reach of the user's next call.
    async fn release_claim(&self, ledger_id: &str) {
        for attempt in 1..=6u64 {
            let released = match self.store.release_event(ledger_id).await {
                Ok(()) => self.store.release_notification(ledger_id).await,
                Err(error) => Err(error),
            };
            if released.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
        }
    }

    /// Delivers a notification still owed to the user (a callback that threw
    /// earlier), with the user's current state.
    async fn deliver_owed(&self, user_id: &str) -> BillingResult<()> {
        if self.listener.is_none() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        if let Some(ledger_id) = self.store.owed_notification(user_id, now).await? {
            self.processor().deliver(&ledger_id, user_id).await?;
        }
        Ok(())
    }

    /// The view of a subscription after a call, and owed notifications settled.
    async fn finish_call(
        &self,
        user_id: &str,
        subscription_id: &str,
    ) -> BillingResult<SubscriptionView> {
        self.deliver_owed(user_id).await?;
        let record = self
            .store
            .subscription_record(subscription_id)
            .await?
            .ok_or_else(|| BillingError::Internal("a stored subscription is gone".into()))?;
        let mut view = record_view(&record, &self.config.plans);
        view.payment_issue = self.store.payment_issue(&record.id).await?;
        Ok(view)
    }

    fn plan_change_form(
        &self,
        record: &SubscriptionRecord,
        change: &PlanChange,
    ) -> BillingResult<(String, FormBody)> {
        let (price_id, _) = self.resolve_price(&change.price)?;
        let behavior = change
            .proration_behavior
            .clone()
            .unwrap_or_else(|| "always_invoice".to_owned());
        if !PRORATION_BEHAVIORS.contains(&behavior.as_str()) {
            return Err(BillingError::invalid_argument(
                "prorationBehavior",
                "must be always_invoice, create_prorations or none",
            ));
        }
        if let Some(quantity) = change.quantity {
            if quantity == 0 {
                return Err(BillingError::invalid_argument(
                    "quantity",
                    "must be at least 1",
                ));
            }
        }
        if change.proration_date.is_some() && behavior == "none" {
            return Err(BillingError::invalid_argument(
                "prorationDate",
                "has no meaning with prorationBehavior none",
            ));
        }
        let item = crate::events::main_item(&record.items)
            .and_then(|item| item.id.clone().map(|id| (id, item.quantity)))
            .ok_or_else(|| {
                BillingError::NoSubscription("the subscription has no item to change".into())
            })?;
        let quantity = change
            .quantity
            .map(i64::from)
            .or(item.1)
            .unwrap_or(1)
            .to_string();
        let mut form = FormBody::new();
        form.push("items[0][id]", item.0)
            .push("items[0][price]", price_id)
            .push("items[0][quantity]", quantity)
            .push("proration_behavior", behavior);
        if let Some(date) = change.proration_date {
            form.push("proration_date", date.to_string());
        }
        Ok((record.id.clone(), form))
    }

    /// Refuses calls on subscriptions that cannot take them.
    fn ensure_changeable(record: &SubscriptionRecord) -> BillingResult<()> {
        if has_ended(&record.status) {
            return Err(BillingError::SubscriptionEnded);
        }
        if record.status == "paused" {
            return Err(BillingError::SubscriptionPaused);
        }
        Ok(())
    }

    /// `changePlan`: the new price on the existing item; a payment that fails
    /// leaves the old plan in place (`pending_if_incomplete`).
    pub async fn change_plan(
        &self,
        user_id: &str,
        change: &PlanChange,
    ) -> BillingResult<PlanChangeResult> {
        let user = self.user(user_id).await?;
        // Arguments first: nothing reaches Stripe before they pass.
        self.resolve_price(&change.price)?;
        let record = self
            .target_subscription(&user, change.subscription_id.as_deref())
            .await?;
        Self::ensure_changeable(&record)?;
        let (id, mut form) = self.plan_change_form(&record, change)?;
        form.push("payment_behavior", "pending_if_incomplete")
            .push("expand[0]", "latest_invoice");
        let answer = self
            .stripe
            .post_dated(&subscription_path(&id)?, &form, &random_idempotency_key())
            .await?;
        let pending = pending_update(&answer.body);
        self.store_returned(&user.id, &answer, "change_plan")
            .await?;
        Ok(PlanChangeResult {
            subscription: self.finish_call(&user.id, &id).await?,
            pending,
        })
    }

    /// `previewPlanChange`: what `changePlan` with the same arguments would
    /// invoice, from Stripe's preview (nothing changes).
    pub async fn preview_plan_change(
        &self,
        user_id: &str,
        change: &PlanChange,
    ) -> BillingResult<PlanChangePreview> {
        let user = self.user(user_id).await?;
        self.resolve_price(&change.price)?;
        let record = self
            .target_subscription(&user, change.subscription_id.as_deref())
            .await?;
        Self::ensure_changeable(&record)?;
        let customer = user
            .stripe_customer_id
            .clone()
            .ok_or(BillingError::NoCustomer)?;
        let (id, update) = self.plan_change_form(&record, change)?;
        let proration_date = change
            .proration_date
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let mut form = FormBody::new();
        form.push("customer", customer).push("subscription", id);
        for (key, value) in update.fields() {
            let key = match key.strip_prefix("items") {
                Some(rest) => format!("subscription_details[items]{rest}"),
                None if key == "proration_date" => continue,
                None => format!("subscription_details[{key}]"),
            };
            form.push(key, value.clone());
        }
        if change.proration_behavior.as_deref() != Some("none") {
            form.push(
                "subscription_details[proration_date]",
                proration_date.to_string(),
            );
        }
        let invoice = self
            .stripe
            .post(
                "/v1/invoices/create_preview",
                &form,
                &random_idempotency_key(),
            )
            .await?;
        let lines = invoice
            .get("lines")
            .and_then(|l| l.get("data"))
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .map(|line| PreviewLine {
                        description: text(line, "description"),
                        amount: line.get("amount").and_then(Value::as_i64).unwrap_or(0),
                        proration: line
                            .get("parent")
                            .and_then(|p| p.get("subscription_item_details"))
                            .and_then(|d| d.get("proration"))
                            .or_else(|| line.get("proration"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        price_id: line
                            .get("pricing")
                            .and_then(|p| p.get("price_details"))
                            .and_then(|d| text(d, "price"))
                            .or_else(|| line.get("price").and_then(|p| text(p, "id"))),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(PlanChangePreview {
            amount_due: invoice
                .get("amount_due")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    BillingError::StripeUnreachable("Stripe's preview lacks `amount_due`".into())
                })?,
            currency: string_field(&invoice, "currency")?,
            proration_date,
            lines,
        })
    }

    /// `cancelSubscription`: at period end by default, or now.
    pub async fn cancel_subscription(
        &self,
        user_id: &str,
        immediately: bool,
        subscription_id: Option<&str>,
    ) -> BillingResult<SubscriptionView> {
        let user = self.user(user_id).await?;
        let record = self.target_subscription(&user, subscription_id).await?;
        if has_ended(&record.status) {
            return Err(BillingError::SubscriptionEnded);
        }
        let path = subscription_path(&record.id)?;
        let answer = if immediately {
            self.stripe
                .delete_dated(&path, &random_idempotency_key())
                .await?
        } else {
            let mut form = FormBody::new();
            form.push("cancel_at_period_end", "true");
            self.stripe
                .post_dated(&path, &form, &random_idempotency_key())
                .await?
        };
        self.store_returned(&user.id, &answer, "cancel").await?;
        self.finish_call(&user.id, &record.id).await
    }

    /// `resumeSubscription`: undoes a scheduled cancellation.
    pub async fn resume_subscription(
        &self,
        user_id: &str,
        subscription_id: Option<&str>,
    ) -> BillingResult<SubscriptionView> {
        let user = self.user(user_id).await?;
        let record = self.target_subscription(&user, subscription_id).await?;
        Self::ensure_changeable(&record)?;
        if record.cancel_at_period_end || record.cancel_at.is_some() {
            let mut form = FormBody::new();
            form.push("cancel_at_period_end", "false")
                .push("cancel_at", "");
            let answer = self
                .stripe
                .post_dated(
                    &subscription_path(&record.id)?,
                    &form,
                    &random_idempotency_key(),
                )
                .await?;
            self.store_returned(&user.id, &answer, "resume").await?;
        }
        self.finish_call(&user.id, &record.id).await
    }

    /// `syncSubscription`: every subscription of the user's customer, listed
    /// from Stripe and stored through the ordering rules. With a checkout
    /// session id (the success page's call), the session must be one this
    /// package created for the user; its customer is linked first.
    pub async fn sync_subscription(
        &self,
        user_id: &str,
        session_id: Option<&str>,
    ) -> BillingResult<Option<SubscriptionView>> {
        let mut user = self.user(user_id).await?;
        if let Some(session_id) = session_id {
            let recorded = if is_stripe_id(session_id) {
                self.store.checkout_session_user(session_id).await?
            } else {
                None
            };
            if recorded.as_deref() != Some(user.id.as_str()) {
                return Err(BillingError::CheckoutSessionNotFound);
            }
            let session = self
                .stripe
                .get(&format!("/v1/checkout/sessions/{session_id}"))
                .await?;
            let customer = session.get("customer").and_then(|c| match c {
                Value::String(id) => Some(id.clone()),
                other => text(other, "id"),
            });
            if let (None, Some(customer)) = (&user.stripe_customer_id, customer) {
                if is_stripe_id(&customer) {
                    self.store.link_customer(&user.id, &customer).await?;
                    user = self.user(user_id).await?;
                }
            }
        }
        let Some(customer) = user.stripe_customer_id.clone() else {
            self.deliver_owed(&user.id).await?;
            return Ok(None);
        };
        if !is_stripe_id(&customer) {
            return Err(BillingError::NoCustomer);
        }
        let mut starting_after: Option<String> = None;
        for _ in 0..MAX_SYNC_PAGES {
            let mut path =
                format!("/v1/subscriptions?customer={customer}&status=all&limit={LIST_PAGE_SIZE}");
            if let Some(after) = &starting_after {
                path.push_str(&format!("&starting_after={after}"));
            }
            let page = self.stripe.get_dated(&path).await?;
            let data = page
                .body
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for object in &data {
                let Ok(snapshot) = SubscriptionSnapshot::from_json(object) else {
                    continue;
                };
                let wanted = self
                    .config
                    .products
                    .as_ref()
                    .is_none_or(|products| snapshot.has_any_product(products));
                if wanted && snapshot.customer_id == customer {
                    self.store_snapshot(&user.id, snapshot, page.date, "sync")
                        .await?;
                }
            }
            let more = page.body.get("has_more").and_then(Value::as_bool) == Some(true);
            starting_after = data
                .last()
                .and_then(|last| text(last, "id"))
                .filter(|id| is_stripe_id(id));
            if !more || starting_after.is_none() {
                break;
            }
        }
        self.deliver_owed(&user.id).await?;
        self.processor().current_view(&user.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_updates_are_read_from_the_answer() {
        let answer = json!({
            "pending_update": { "expires_at": 1_800_000_000 },
            "latest_invoice": { "id": "in_1", "hosted_invoice_url": "https://invoice.stripe.test/i/1" }
        });
        assert_eq!(
            pending_update(&answer),
            Some(PendingUpdate {
                invoice_id: Some("in_1".into()),
                hosted_invoice_url: Some("https://invoice.stripe.test/i/1".into()),
                expires_at: Some(1_800_000_000),
            })
        );
        assert_eq!(pending_update(&json!({ "pending_update": null })), None);
        assert_eq!(
            pending_update(&json!({ "pending_update": {}, "latest_invoice": "in_2" }))
                .and_then(|p| p.invoice_id),
            Some("in_2".into())
        );
    }

    #[test]
    fn ids_in_paths_are_checked() {
        assert!(subscription_path("sub_1").is_ok());
        assert!(subscription_path("sub_1/../customers").is_err());
        assert!(subscription_path("").is_err());
    }
}
