//! Applying verified events exactly once, in any order, under Stripe's
//! at-least-once delivery, and notifying the app at least once per real change.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::invoice::{InvoiceSnapshot, INVOICE_EVENT_TYPES};
use super::snapshot::{
    customer_metadata_user, object_id, CheckoutCompletion, SubscriptionSnapshot,
};
use crate::billing::{subscription_view, subscription_view_of, SubscriptionView};
use crate::config::BillingConfig;
use crate::error::{BillingError, BillingResult};
use crate::store::{
    ApplyOutcome, Claim, EventState, Fetched, IssueNotificationClaim, Store, SubscriptionChange,
    SubscriptionWrite,
};
use crate::stripe::{StripeClient, StripeResponse};
use crate::webhook::EventEnvelope;

/// All Stripe fetches one webhook delivery may make share this budget: far
/// below Stripe's delivery timeout, so a slow Stripe becomes our 5xx (and a
/// retry) rather than a timed-out delivery.
pub const WEBHOOK_FETCH_BUDGET: Duration = Duration::from_secs(5);
/// How long a claim protects an event being handled; a delivery that died
/// leaves it to expire, and a later retry takes over.
pub const LEASE_SECS: i64 = 60;
/// How long a delivery waits for another delivery of the same event.
const WAIT_FOR_OTHER_DELIVERY: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Re-notifications when the projection keeps changing during the callback.
const MAX_NOTIFY_ROUNDS: usize = 3;

/// Every event type this package handles (webhook endpoints must send them).
pub const HANDLED_EVENT_TYPES: [&str; 15] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "customer.subscription.trial_will_end",
    "customer.deleted",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
];

/// The app's `onSubscriptionChange`.
pub trait SubscriptionListener: Send + Sync {
    fn notify(
        &self,
        user_id: String,
        subscription: SubscriptionView,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// The app's `onEvent`: the verified event's JSON.
pub trait EventListener: Send + Sync {
    fn event(&self, payload: String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// The app's `onTrialWillEnd`.
pub trait TrialListener: Send + Sync {
    fn trial_will_end(
        &self,
        user_id: String,
        trial_ends_at: i64,
        subscription: SubscriptionView,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Applied; `notified` says whether `onSubscriptionChange` was called.
    Applied {
        notified: bool,
    },
    /// Handled before. `notified` is true only when a notification a failed
    /// delivery still owed was delivered now.
    Duplicate {
        notified: bool,
    },
    Ignored(&'static str),
    Unhandled,
}

impl EventOutcome {
    pub fn body(&self) -> Value {
        let mut body = match self {
            Self::Applied { .. } | Self::Unhandled => serde_json::json!({ "received": true }),
            Self::Duplicate { .. } => serde_json::json!({ "received": true, "duplicate": true }),
            Self::Ignored(reason) => serde_json::json!({ "received": true, "ignored": reason }),
        };
        if let Self::Applied { notified: true } | Self::Duplicate { notified: true } = self {
            body["notified"] = Value::Bool(true);
        }
        body
    }
}

pub struct EventProcessor<'a> {
    pub config: &'a BillingConfig,
    pub store: &'a Store,
    pub stripe: &'a StripeClient,
    pub listener: Option<&'a dyn SubscriptionListener>,
    pub trial_listener: Option<&'a dyn TrialListener>,
}

/// A handled event: its outcome and the user owed a notification.
struct Handled {
    outcome: EventOutcome,
    notify_user: Option<String>,
}

impl Handled {
    fn ignored(reason: &'static str) -> Self {
        Self {
            outcome: EventOutcome::Ignored(reason),
            notify_user: None,
        }
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl EventProcessor<'_> {
    /// The general path, for what the batch writer does not take or declines
    /// (see `BillingService::receive_event`): claim the event in the ledger,
    /// fetch from Stripe what the event does not settle, apply, notify.
    pub async fn process_general(&self, event: &EventEnvelope) -> BillingResult<EventOutcome> {
        if !HANDLED_EVENT_TYPES.contains(&event.event_type.as_str()) {
            return Ok(EventOutcome::Unhandled);
        }
        let waited_until = Instant::now() + WAIT_FOR_OTHER_DELIVERY;
        loop {
            match self
                .store
                .claim_event(
                    &event.id,
                    &event.event_type,
                    event.created,
                    now_secs(),
                    LEASE_SECS,
                )
                .await?
            {
                Claim::Claimed => break,
                Claim::Finished => match self.claim_issue_notification(event).await? {
                    IssueNotificationClaim::Settled => {
                        return Ok(EventOutcome::Duplicate { notified: false })
                    }
                    IssueNotificationClaim::Owed { ledger_id, user_id } => {
                        let notified = self.deliver(&ledger_id, &user_id).await?;
                        return Ok(EventOutcome::Duplicate { notified });
                    }
                    IssueNotificationClaim::InProgress if Instant::now() >= waited_until => {
                        return Err(BillingError::EventInProgress)
                    }
                    IssueNotificationClaim::InProgress => tokio::time::sleep(POLL_INTERVAL).await,
                },
                Claim::Notify { user_id } => {
                    let notified = self.deliver(&event.id, &user_id).await?;
                    return Ok(EventOutcome::Duplicate { notified });
                }
                Claim::InProgress if Instant::now() >= waited_until => {
                    return Err(BillingError::EventInProgress)
                }
                Claim::InProgress => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
        let deadline = Instant::now() + WEBHOOK_FETCH_BUDGET;
        match self.handle(event, deadline).await {
            Ok(handled) => match (handled.outcome, handled.notify_user) {
                (EventOutcome::Applied { .. }, Some(user_id)) => {
                    let notified = self.deliver(&event.id, &user_id).await?;
                    Ok(EventOutcome::Applied { notified })
                }
                (outcome, _) => Ok(outcome),
            },
            Err(error) => {
                // Nothing was recorded as handled: Stripe's retry does it all
                // again. (If even this fails, the lease expires.) A payment
                // issue notification recorded meanwhile is the retry's too.
                let _ = self.store.release_event(&event.id).await;
                if self.owes_issue_notifications(event) {
                    let _ = self.store.release_issue_notification(&event.id).await;
                }
                Err(error)
            }
        }
    }

    fn owes_issue_notifications(&self, event: &EventEnvelope) -> bool {
        self.listener.is_some() && INVOICE_EVENT_TYPES.contains(&event.event_type.as_str())
    }

    /// For a finished invoice event: the payment issue notification its
    /// handling recorded, if a failed delivery left it owed.
    async fn claim_issue_notification(
        &self,
        event: &EventEnvelope,
    ) -> BillingResult<IssueNotificationClaim> {
        if !self.owes_issue_notifications(event) {
            return Ok(IssueNotificationClaim::Settled);
        }
        self.store
            .claim_issue_notification(&event.id, now_secs(), LEASE_SECS)
            .await
    }

    /// Calls `onSubscriptionChange` with the user's projection as it is now,
    /// then marks the notification delivered. If the projection changed while
    /// the callback ran (another instance applied an event), the callback is
    /// called again, so the last call any instance makes carries the latest
    /// projection. Returns whether the callback was called.
    pub async fn deliver(&self, event_id: &str, user_id: &str) -> BillingResult<bool> {
        let mut called = false;
        let mut settled = Vec::new();
        if let Some(listener) = self.listener {
            // What the user is owed now committed before the view is read, so
            // a successful call carries it too. Rows committed later deliver
            // themselves (or, failing, through their own retry).
            settled = self.store.owed_notification_ids(user_id).await?;
            let mut current = self.current_view(user_id).await?;
            for _ in 0..MAX_NOTIFY_ROUNDS {
                let Some(view) = current.clone() else {
                    break;
                };
                if let Err(message) = listener.notify(user_id.to_owned(), view.clone()).await {
                    // Stripe's retry may deliver it at once (else the lease expires).
                    let _ = self.store.release_notification(event_id).await;
                    return Err(BillingError::ListenerFailed(message));
                }
                called = true;
                current = self.current_view(user_id).await?;
                if current.as_ref() == Some(&view) {
                    break;
                }
            }
        }
        for owed in settled.iter().filter(|id| id.as_str() != event_id) {
            self.store.mark_notified(owed).await?;
        }
        self.store.mark_notified(event_id).await?;
        Ok(called)
    }

    /// The user's projected subscription as `onSubscriptionChange` gets it,
    /// with its payment issue.
    pub async fn current_view(&self, user_id: &str) -> BillingResult<Option<SubscriptionView>> {
        let Some(mut view) = self
            .store
            .find_user(user_id)
            .await?
            .as_ref()
            .and_then(|user| subscription_view(user, &self.config.plans))
        else {
            return Ok(None);
        };
        view.payment_issue = self.store.payment_issue(&view.id).await?;
        Ok(Some(view))
    }

    async fn handle(&self, event: &EventEnvelope, deadline: Instant) -> BillingResult<Handled> {
        let object = &event.object;
        match event.event_type.as_str() {
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.pending_update_applied"
            | "customer.subscription.pending_update_expired" => {
                let mut snapshot = SubscriptionSnapshot::from_json(object)
                    .map_err(|e| BillingError::PayloadInvalid(e.to_string()))?;
                if event.event_type == "customer.subscription.deleted" {
                    snapshot.status = "canceled".to_owned();
                }
                self.apply_snapshot(event, snapshot, None, None, deadline)
                    .await
            }
            "checkout.session.completed" => {
                let completion = CheckoutCompletion::from_json(object)
                    .map_err(|e| BillingError::PayloadInvalid(e.to_string()))?;
                self.checkout_completed(event, &completion, deadline).await
            }
            event_type if INVOICE_EVENT_TYPES.contains(&event_type) => {
                self.invoice_event(event, deadline).await
            }
            "customer.subscription.trial_will_end" => self.trial_will_end(event).await,
            "customer.deleted" => {
                let customer_id = object_id(object)
                    .ok_or_else(|| BillingError::PayloadInvalid("the customer has no id".into()))?;
                self.store.unlink_customer(&customer_id).await?;
                self.done(event).await
            }
            _ => Ok(Handled {
                outcome: EventOutcome::Unhandled,
                notify_user: None,
            }),
        }
    }

    async fn checkout_completed(
        &self,
        event: &EventEnvelope,
        completion: &CheckoutCompletion,
        deadline: Instant,
    ) -> BillingResult<Handled> {
        // client_reference_id is trusted only for sessions this package created.
        let recorded_user = self
            .store
            .checkout_session_user(&completion.session_id)
            .await?;
        if completion.mode == "subscription" {
            let Some(subscription_id) = &completion.subscription_id else {
                return Err(BillingError::PayloadInvalid(
                    "a subscription checkout without a subscription".into(),
                ));
            };
            let Some((snapshot, as_of)) =
                self.fetch_subscription(subscription_id, deadline).await?
            else {
                return self
                    .ignore(event, "the subscription is gone at Stripe")
                    .await;
            };
            return self
                .apply_snapshot(
                    event,
                    snapshot,
                    Some(Fetched { as_of }),
                    recorded_user,
                    deadline,
                )
                .await;
        }
        // payment and setup modes: link the customer only.
        let Some(customer_id) = &completion.customer_id else {
            return self.ignore(event, "no customer").await;
        };
        match self
            .resolve_user(customer_id, recorded_user, None, deadline)
            .await?
        {
            Some(_) => self.done(event).await,
            None => self.ignore(event, "no user owns this customer").await,
        }
    }

    /// An invoice event: the invoice is stored (moved only forward), and a
    /// failed payment makes the subscription `past_due` as before. The owner
    /// is notified when their payment issue appears, changes or clears.
    async fn invoice_event(
        &self,
        event: &EventEnvelope,
        deadline: Instant,
    ) -> BillingResult<Handled> {
        let invoice = InvoiceSnapshot::from_json(&event.object, &event.event_type)
            .map_err(|e| BillingError::PayloadInvalid(e.to_string()))?;
        let Some(subscription_id) = invoice.subscription_id.clone() else {
            return self.ignore(event, "not a subscription invoice").await;
        };
        let applied = self
            .store
            .apply_invoice(&invoice, &event.id, event.created, self.listener.is_some())
            .await?;
        // A plan change's invoice (`payment_behavior=pending_if_incomplete`):
        // the change waits for payment and the subscription keeps its plan
        // and status; Stripe reports any real status change itself.
        let pending_change = invoice.billing_reason.as_deref() == Some("subscription_update");
        let mut handled = if event.event_type == "invoice.payment_failed" && !pending_change {
            self.payment_failed(event, &subscription_id, deadline)
                .await?
        } else {
            self.done(event).await?
        };
        if let (true, None, Some(owner)) =
            (applied.issue_changed, &handled.notify_user, applied.owner)
        {
            if self.listener.is_some() {
                self.store.finish_event_owing(&event.id, &owner).await?;
                handled = Handled {
                    outcome: EventOutcome::Applied { notified: false },
                    notify_user: Some(owner),
                };
            }
        }
        Ok(handled)
    }

    /// `customer.subscription.trial_will_end`: calls `onTrialWillEnd` once
    /// per event. If it throws, the event is given back and Stripe's retry
    /// calls it again; nothing else is stored for it.
    async fn trial_will_end(&self, event: &EventEnvelope) -> BillingResult<Handled> {
        let snapshot = SubscriptionSnapshot::from_json(&event.object)
            .map_err(|e| BillingError::PayloadInvalid(e.to_string()))?;
        let Some(listener) = self.trial_listener else {
            return self.done(event).await;
        };
        let owner = match self.store.subscription_facts(&snapshot.id).await? {
            Some(facts) if facts.user_id.is_some() => facts.user_id,
            _ => self.store.user_by_customer(&snapshot.customer_id).await?,
        };
        let Some(user_id) = owner else {
            return self.ignore(event, "no user owns this customer").await;
        };
        let Some(trial_end) = snapshot.trial_end else {
            return self
                .ignore(event, "the subscription has no trial end")
                .await;
        };
        let mut view = subscription_view_of(&snapshot.stored(), &self.config.plans);
        view.payment_issue = self.store.payment_issue(&snapshot.id).await?;
        if let Err(message) = listener.trial_will_end(user_id, trial_end, view).await {
            return Err(BillingError::TrialListenerFailed(message));
        }
        self.done(event).await
    }

    /// Records the event as handled, with no notification owed.
    async fn done(&self, event: &EventEnvelope) -> BillingResult<Handled> {
        self.store
            .finish_event(&event.id, EventState::Done, None)
            .await?;
        Ok(Handled {
            outcome: EventOutcome::Applied { notified: false },
            notify_user: None,
        })
    }

    /// Records the event as ignored, with why.
    async fn ignore(&self, event: &EventEnvelope, reason: &'static str) -> BillingResult<Handled> {
        self.store
            .finish_event(&event.id, EventState::Ignored, Some(reason))
            .await?;
        Ok(Handled::ignored(reason))
    }

    async fn payment_failed(
        &self,
        event: &EventEnvelope,
        subscription_id: &str,
        deadline: Instant,
    ) -> BillingResult<Handled> {
        let Some(facts) = self.store.subscription_facts(subscription_id).await? else {
            return self.apply_fetched(event, subscription_id, deadline).await;
        };
        let write = SubscriptionWrite {
            event_id: &event.id,
            event_created: event.created,
            user_id: facts.user_id.as_deref(),
            change: SubscriptionChange::PaymentFailed {
                subscription_id: subscription_id.to_owned(),
            },
            notify: self.listener.is_some(),
        };
        match self.store.apply_subscription(&write).await? {
            ApplyOutcome::NeedsRefetch | ApplyOutcome::UnknownSubscription => {
                self.apply_fetched(event, subscription_id, deadline).await
            }
            outcome => handled_from(outcome),
        }
    }

    /// Fetches a subscription from Stripe and applies it as the truth.
    async fn apply_fetched(
        &self,
        event: &EventEnvelope,
        subscription_id: &str,
        deadline: Instant,
    ) -> BillingResult<Handled> {
        match self.fetch_subscription(subscription_id, deadline).await? {
            Some((snapshot, as_of)) => {
                self.apply_snapshot(event, snapshot, Some(Fetched { as_of }), None, deadline)
                    .await
            }
            None => {
                self.ignore(event, "the subscription is gone at Stripe")
                    .await
            }
        }
    }

    async fn apply_snapshot(
        &self,
        event: &EventEnvelope,
        mut snapshot: SubscriptionSnapshot,
        mut fetched: Option<Fetched>,
        known_user: Option<String>,
        deadline: Instant,
    ) -> BillingResult<Handled> {
        if let Some(products) = &self.config.products {
            if !snapshot.has_any_product(products) {
                return self.ignore(event, "none of the configured products").await;
            }
        }
        let metadata_user = snapshot.metadata_user_id.clone();
        let user_id = self
            .resolve_user(&snapshot.customer_id, known_user, metadata_user, deadline)
            .await?;
        // A same-second event is settled by Stripe's current state: at most
        // one fetch, then the fetched truth applies.
        for _ in 0..2 {
            let write = SubscriptionWrite {
                event_id: &event.id,
                event_created: event.created,
                user_id: user_id.as_deref(),
                change: SubscriptionChange::Snapshot {
                    snapshot: snapshot.clone(),
                    fetched,
                },
                notify: self.listener.is_some(),
            };
            match self.store.apply_subscription(&write).await? {
                ApplyOutcome::NeedsRefetch if fetched.is_none() => {
                    let Some((truth, as_of)) =
                        self.fetch_subscription(&snapshot.id, deadline).await?
                    else {
                        return self
                            .ignore(event, "the subscription is gone at Stripe")
                            .await;
                    };
                    snapshot = truth;
                    fetched = Some(Fetched { as_of });
                }
                outcome => return handled_from(outcome),
            }
        }
        Err(BillingError::Internal(
            "a fetched subscription was not applied".into(),
        ))
    }

    /// The user a customer belongs to: the linked one; else `known` (a
    /// checkout session this package created), the subscription's
    /// `metadata.kavach_user_id`, or the customer's at Stripe, which is then
    /// linked. A customer linked to one user is never moved to another.
    async fn resolve_user(
        &self,
        customer_id: &str,
        known: Option<String>,
        metadata_user: Option<String>,
        deadline: Instant,
    ) -> BillingResult<Option<String>> {
        if let Some(owner) = self.store.user_by_customer(customer_id).await? {
            return Ok(Some(owner));
        }
        let candidate = match known.or(metadata_user) {
            Some(user) => Some(user),
            None => self
                .fetch(
                    &format!("/v1/customers/{}", path_segment(customer_id)),
                    deadline,
                )
                .await?
                .as_ref()
                .and_then(customer_metadata_user),
        };
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        if self.store.find_user(&candidate).await?.is_none() {
            return Ok(None);
        }
        self.store.link_customer(&candidate, customer_id).await?;
        Ok(Some(candidate))
    }

    /// The subscription at Stripe, and the time Stripe answered (its `Date`).
    async fn fetch_subscription(
        &self,
        subscription_id: &str,
        deadline: Instant,
    ) -> BillingResult<Option<(SubscriptionSnapshot, Option<i64>)>> {
        match self
            .fetch_dated(
                &format!("/v1/subscriptions/{}", path_segment(subscription_id)),
                deadline,
            )
            .await?
        {
            None => Ok(None),
            Some(answer) => SubscriptionSnapshot::from_json(&answer.body)
                .map(|snapshot| Some((snapshot, answer.date)))
                .map_err(|e| BillingError::StripeUnreachable(format!("Stripe answered with {e}"))),
        }
    }

    /// A GET within the delivery's budget; `None` when Stripe says 404.
    async fn fetch(&self, path: &str, deadline: Instant) -> BillingResult<Option<Value>> {
        Ok(self.fetch_dated(path, deadline).await?.map(|a| a.body))
    }

    async fn fetch_dated(
        &self,
        path: &str,
        deadline: Instant,
    ) -> BillingResult<Option<StripeResponse>> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.stripe.get_dated(path)).await {
            Err(_) => Err(BillingError::StripeUnreachable(format!(
                "the webhook's {}s budget for Stripe requests ran out",
                WEBHOOK_FETCH_BUDGET.as_secs()
            ))),
            Ok(Err(BillingError::StripeApi(error))) if error.status_code == 404 => Ok(None),
            Ok(Err(BillingError::StripeApi(error))) => {
                Err(BillingError::StripeUnreachable(format!(
                    "Stripe answered {} to a fetch: {}",
                    error.status_code, error.message
                )))
            }
            Ok(result) => result.map(Some),
        }
    }
}

fn handled_from(outcome: ApplyOutcome) -> BillingResult<Handled> {
    match outcome {
        ApplyOutcome::Applied { changed_user } => Ok(Handled {
            outcome: EventOutcome::Applied { notified: false },
            notify_user: changed_user,
        }),
        ApplyOutcome::Stale => Ok(Handled {
            outcome: EventOutcome::Applied { notified: false },
            notify_user: None,
        }),
        ApplyOutcome::Unowned => Ok(Handled::ignored("no user owns this customer")),
        ApplyOutcome::NeedsRefetch | ApplyOutcome::UnknownSubscription => {
            Err(BillingError::Internal(format!(
                "a fetched subscription could not be applied ({outcome:?})"
            )))
        }
    }
}

/// Ids go into URL paths: keep only what Stripe ids are made of.
fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}
