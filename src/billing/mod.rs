//! The billing service: the operations behind `api` and the endpoints, on top
//! of the store and the Stripe client.

mod event_delivery;
pub mod invoices;
pub mod lifecycle;
pub mod plans;
pub mod reconcile;
pub mod status;
mod sync_limit;
mod trial;

use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::config::{
    is_stripe_id, BillingConfig, STRIPE_METADATA_MAX_KEYS, STRIPE_METADATA_MAX_KEY_CHARS,
    STRIPE_METADATA_MAX_VALUE_CHARS, USER_ID_METADATA_KEY,
};
use crate::error::{BillingError, BillingResult};
use crate::events::{
    is_live, read_subscription_event, EventListener, EventOutcome, EventProcessor, PaymentIssue,
    StoredSubscription, SubscriptionListener, TrialListener, LEASE_SECS,
};
use crate::origin::parse_http_url;
use crate::store::{
    DatabaseOptions, DatabaseSource, Store, SubscriptionEventWrite, SubscriptionRecord, UserRecord,
    WriteOutcome,
};
use crate::stripe::{derived_idempotency_key, random_idempotency_key, FormBody, StripeClient};
use crate::webhook::{parse_event, EventEnvelope};
use plans::{plan_for_price, plan_named, plan_view, Plan, PlanView};
use status::{billing_status, matches_filter, BillingStatus, SubscriptionFilter};

/// Answers one verified webhook payload: the response body, or the error.
pub type EventReply = Box<dyn FnOnce(BillingResult<Value>) + Send>;

/// A customer-creation claim older than this belonged to a process that died.
const CUSTOMER_CLAIM_STALE_SECS: i64 = 30;
/// How long a call waits for a concurrent call creating the same customer.
const CUSTOMER_CLAIM_WAIT: Duration = Duration::from_secs(20);

/// Paths appended to `baseUrl` (or the request's origin) when a checkout is
/// created without explicit redirect URLs.
pub const DEFAULT_SUCCESS_PATH: &str = "/billing/success?session_id={CHECKOUT_SESSION_ID}";
pub const DEFAULT_CANCEL_PATH: &str = "/billing/cancel";

/// The user's subscription as projected onto `kavach_users`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub status: String,
    pub price_id: Option<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// The configured plan of `price_id`, if any.
    pub plan: Option<PlanView>,
    /// The newest open invoice that failed or requires action, if any.
    pub payment_issue: Option<PaymentIssue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    pub url: String,
    pub session_id: String,
    /// Whether the session carries a free trial (false also when none was asked).
    pub trial_granted: bool,
}

/// What a checkout sells: a price, or a configured plan (monthly or annual).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceChoice {
    Price(String),
    Plan { name: String, annual: bool },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub trial_days: Option<u32>,
    pub metadata: Vec<(String, String)>,
}

pub struct BillingService {
    config: BillingConfig,
    store: Store,
    stripe: StripeClient,
    listener: Option<Arc<dyn SubscriptionListener>>,
    trial_listener: Option<Arc<dyn TrialListener>>,
    event_listener: Option<Arc<dyn EventListener>>,
    /// When this instance last pruned the event ledger (Unix seconds).
    last_prune: AtomicI64,
    /// When this instance last pruned `onEvent` deliveries.
    last_delivery_prune: AtomicI64,
    /// One sync per user per interval, when no host rate-limits the route.
    sync_limit: sync_limit::SyncLimit,
    /// The runtime the service was opened on: webhook work that must await
    /// (Stripe fetches, notifications) is spawned on it.
    runtime: tokio::runtime::Handle,
}

/// How often one instance prunes the ledger.
const PRUNE_INTERVAL_SECS: i64 = 3600;

impl BillingService {
    /// Connects to the database, runs the migrations and builds the client.
    pub async fn open(
        config: BillingConfig,
        database: &DatabaseOptions,
        source: DatabaseSource,
        listener: Option<Arc<dyn SubscriptionListener>>,
        trial_listener: Option<Arc<dyn TrialListener>>,
        event_listener: Option<Arc<dyn EventListener>>,
    ) -> BillingResult<Self> {
        let target = database.target(source)?;
        let stripe = StripeClient::new(&config)?;
        let store = Store::connect(&target).await?;
        if let Err(error) = store.migrate().await {
            store.close().await;
            return Err(error);
        }
        Ok(Self {
            config,
            store,
            stripe,
            listener,
            trial_listener,
            event_listener,
            last_prune: AtomicI64::new(0),
            last_delivery_prune: AtomicI64::new(0),
            sync_limit: sync_limit::SyncLimit::default(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn ensure_open(&self) -> BillingResult<()> {
        if self.store.is_closed() {
            Err(BillingError::Closed)
        } else {
            Ok(())
        }
    }

    async fn user(&self, user_id: &str) -> BillingResult<UserRecord> {
        self.ensure_open()?;
        // No database stores text with a NUL (Postgres refuses it outright):
        // such a user cannot exist, on any of them.
        if user_id.is_empty() || user_id.contains('\0') {
            return Err(BillingError::UserNotFound(user_id.replace('\0', "\\0")));
        }
        self.store
            .find_user(user_id)
            .await?
            .ok_or_else(|| BillingError::UserNotFound(user_id.to_owned()))
    }

    pub async fn get_customer_id(&self, user_id: &str) -> BillingResult<Option<String>> {
        Ok(self.user(user_id).await?.stripe_customer_id)
    }

    /// Creates the user's Stripe customer, or returns the one already linked.
    pub async fn create_customer(
        &self,
        user_id: &str,
        email: &str,
        name: Option<&str>,
    ) -> BillingResult<String> {
        let user = self.user(user_id).await?;
        if let Some(existing) = user.stripe_customer_id {
            return Ok(existing);
        }
        if email.trim().is_empty() || !email.contains('@') {
            return Err(BillingError::invalid_argument(
                "email",
                "must be an email address",
            ));
        }
        self.create_customer_for(&user, email, name).await
    }

    /// Creates and links the user's customer; one at a time per user. A claim
    /// row guards creation across processes (concurrent calls wait for the
    /// first and return its customer); the idempotency key, derived from the
    /// user and the parameters, collapses retries at Stripe.
    async fn create_customer_for(
        &self,
        user: &UserRecord,
        email: &str,
        name: Option<&str>,
    ) -> BillingResult<String> {
        let give_up_at = Instant::now() + CUSTOMER_CLAIM_WAIT;
        loop {
            let current = self
                .store
                .find_user(&user.id)
                .await?
                .ok_or_else(|| BillingError::UserNotFound(user.id.clone()))?;
            if let Some(existing) = current.stripe_customer_id {
                return Ok(existing);
            }
            let now = chrono::Utc::now().timestamp();
            if self
                .store
                .claim_customer_creation(&user.id, now, now - CUSTOMER_CLAIM_STALE_SECS)
                .await?
            {
                break;
            }
            if Instant::now() >= give_up_at {
                return Err(BillingError::CustomerCreationInProgress);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = self.create_and_link_customer(user, email, name).await;
        // A claim that cannot be released expires after CUSTOMER_CLAIM_STALE_SECS.
        let _ = self.store.release_customer_claim(&user.id).await;
        created
    }

    async fn create_and_link_customer(
        &self,
        user: &UserRecord,
        email: &str,
        name: Option<&str>,
    ) -> BillingResult<String> {
        let mut form = FormBody::new();
        form.push("email", email);
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            form.push("name", name);
        }
        form.push(
            format!("metadata[{USER_ID_METADATA_KEY}]"),
            user.id.as_str(),
        );
        let key = derived_idempotency_key("customer", &[&user.id, email, name.unwrap_or("")]);
        let customer = self.stripe.post("/v1/customers", &form, &key).await?;
        let customer_id = string_field(&customer, "id")?;
        if self.store.link_customer(&user.id, &customer_id).await? {
            return Ok(customer_id);
        }
        // Linked meanwhile by a webhook (checkout completion): that one is the user's.
        self.store
            .find_user(&user.id)
            .await?
            .and_then(|u| u.stripe_customer_id)
            .ok_or_else(|| BillingError::UserNotFound(user.id.clone()))
    }

    pub async fn get_subscription(&self, user_id: &str) -> BillingResult<Option<SubscriptionView>> {
        self.user(user_id).await?;
        self.processor().current_view(user_id).await
    }

    /// The user's projected subscription as stored, whole. A projection with
    /// no row of ours (written by kavachOS's own plugin before this one) is
    /// read from the user's columns.
    async fn projected_record(
        &self,
        user: &UserRecord,
    ) -> BillingResult<Option<SubscriptionRecord>> {
        let Some(id) = &user.stripe_subscription_id else {
            return Ok(None);
        };
        if let Some(record) = self.store.subscription_record(id).await? {
            return Ok(Some(record));
        }
        Ok(Some(SubscriptionRecord {
            id: id.clone(),
            status: user.stripe_subscription_status.clone().unwrap_or_default(),
            price_id: user.stripe_price_id.clone(),
            current_period_end: user.stripe_current_period_end,
            cancel_at_period_end: user.stripe_cancel_at_period_end,
            ..SubscriptionRecord::default()
        }))
    }

    /// `getBillingStatus`: from stored state only, never a call to Stripe.
    pub async fn billing_status(&self, user_id: &str) -> BillingResult<BillingStatus> {
        let user = self.user(user_id).await?;
        let record = self.projected_record(&user).await?;
        let mut status = billing_status(
            record.as_ref(),
            &self.config.plans,
            self.config.past_due_is_active,
            chrono::Utc::now().timestamp(),
        );
        if let Some(record) = &record {
            status.payment_issue = self.store.payment_issue(&record.id).await?;
        }
        Ok(status)
    }

    /// `hasActiveSubscription`: active, and holding what the filter names.
    pub async fn has_active_subscription(
        &self,
        user_id: &str,
        filter: &SubscriptionFilter,
    ) -> BillingResult<bool> {
        for (name, id) in [
            ("priceId", &filter.price_id),
            ("productId", &filter.product_id),
        ] {
            if id.as_deref().is_some_and(|id| !is_stripe_id(id)) {
                return Err(BillingError::invalid_argument(name, "must be a Stripe id"));
            }
        }
        if let Some(plan) = &filter.plan {
            plan_named(&self.config.plans, plan)?;
        }
        let user = self.user(user_id).await?;
        let Some(record) = self.projected_record(&user).await? else {
            return Ok(false);
        };
        let active = status::is_active_status(&record.status, self.config.past_due_is_active);
        Ok(active && matches_filter(&record, filter, &self.config.plans))
    }

    /// The price a checkout sells and the plan it belongs to.
    fn resolve_price(&self, choice: &PriceChoice) -> BillingResult<(String, Option<&Plan>)> {
        match choice {
            PriceChoice::Price(price_id) => {
                if !is_stripe_id(price_id) {
                    return Err(BillingError::invalid_argument(
                        "priceId",
                        "must be a Stripe price id",
                    ));
                }
                let plan = plan_for_price(&self.config.plans, price_id).map(|(plan, _)| plan);
                Ok((price_id.clone(), plan))
            }
            PriceChoice::Plan { name, annual } => {
                let plan = plan_named(&self.config.plans, name)?;
                let price_id = if *annual {
                    plan.annual_price_id.clone().ok_or_else(|| {
                        BillingError::invalid_argument(
                            "annual",
                            "cannot be used: this plan has no annualPriceId",
                        )
                    })?
                } else {
                    plan.price_id.clone()
                };
                Ok((price_id, Some(plan)))
            }
        }
    }

    pub async fn create_checkout_session(
        &self,
        user_id: &str,
        choice: &PriceChoice,
        options: &CheckoutOptions,
    ) -> BillingResult<CheckoutSession> {
        // Checked in this order: the user, the customer, then the arguments;
        // nothing is created at Stripe before all of them pass.
        let user = self.user(user_id).await?;
        if user.stripe_customer_id.is_none() && !self.config.auto_create_customer {
            return Err(BillingError::NoCustomer);
        }
        let (price_id, plan) = self.resolve_price(choice)?;
        let price_id = price_id.as_str();
        let success_url = self.redirect_url(
            "successUrl",
            options.success_url.as_deref(),
            DEFAULT_SUCCESS_PATH,
        )?;
        let cancel_url = self.redirect_url(
            "cancelUrl",
            options.cancel_url.as_deref(),
            DEFAULT_CANCEL_PATH,
        )?;
        if let Some(days) = options.trial_days {
            if !(1..=730).contains(&days) {
                return Err(BillingError::invalid_argument(
                    "trialDays",
                    "must be from 1 to 730",
                ));
            }
        }
        check_metadata(&options.metadata)?;
        if user
            .stripe_subscription_status
            .as_deref()
            .is_some_and(|status| user.stripe_subscription_id.is_some() && is_live(status))
        {
            return Err(BillingError::SubscriptionActive);
        }
        // The app's own `trialDays` wins over the plan's.
        let trial_days = options.trial_days.or(plan.and_then(|p| p.trial_days));
        let customer_id = match &user.stripe_customer_id {
            Some(id) => id.clone(),
            None => {
                let email = user.email.clone();
                self.create_customer_for(&user, &email, user.name.as_deref())
                    .await?
            }
        };

        let mut form = FormBody::new();
        form.push("mode", "subscription")
            .push("customer", customer_id.as_str())
            .push("client_reference_id", user.id.as_str())
            .push("line_items[0][price]", price_id)
            .push("line_items[0][quantity]", "1")
            .push("success_url", success_url)
            .push("cancel_url", cancel_url)
            .push(
                format!("subscription_data[metadata][{USER_ID_METADATA_KEY}]"),
                user.id.as_str(),
            );
        let trial = match trial_days {
            Some(days) => self.grant_trial(&user.id).await?.map(|claim| (days, claim)),
            None => None,
        };
        if let Some((days, _)) = trial {
            form.push("subscription_data[trial_period_days]", days.to_string());
        }
        form.push_map(
            "metadata",
            options
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        form.push(
            format!("metadata[{USER_ID_METADATA_KEY}]"),
            user.id.as_str(),
        );

        let created = async {
            let session = self
                .stripe
                .post("/v1/checkout/sessions", &form, &random_idempotency_key())
                .await?;
            Ok::<_, BillingError>((
                string_field(&session, "id")?,
                string_field(&session, "url")?,
                session.get("expires_at").and_then(Value::as_i64),
            ))
        }
        .await;
        let (session_id, url, expires_at) = match created {
            Ok(created) => created,
            Err(error) => {
                // Only a refusal (4xx) proves no session exists; after a 5xx
                // or no answer one may, so its trial stays taken.
                let refused = matches!(&error, BillingError::StripeApi(e) if (400..500).contains(&e.status_code));
                if let (Some((_, claim)), true) = (&trial, refused) {
                    self.give_back_trial(&user.id, claim).await;
                }
                return Err(error);
            }
        };
        if let Some((_, claim)) = &trial {
            self.bind_trial(&user.id, claim, &session_id, expires_at)
                .await;
        }
        self.store
            .record_checkout_session(&session_id, &user.id)
            .await?;
        Ok(CheckoutSession {
            url,
            session_id,
            trial_granted: trial.is_some(),
        })
    }

    pub async fn create_portal_session(
        &self,
        user_id: &str,
        return_url: &str,
    ) -> BillingResult<String> {
        let user = self.user(user_id).await?;
        let customer_id = user.stripe_customer_id.ok_or(BillingError::NoCustomer)?;
        if parse_http_url(return_url).is_none() {
            return Err(BillingError::invalid_argument(
                "returnUrl",
                "must be an absolute http(s) URL",
            ));
        }
        let mut form = FormBody::new();
        form.push("customer", customer_id)
            .push("return_url", return_url);
        let session = self
            .stripe
            .post(
                "/v1/billing_portal/sessions",
                &form,
                &random_idempotency_key(),
            )
            .await?;
        string_field(&session, "url")
    }

    /// Standalone deployments own `kavach_users`: create or update a user.
    pub async fn upsert_user(
        &self,
        user_id: &str,
        email: &str,
        name: Option<&str>,
    ) -> BillingResult<()> {
        self.ensure_open()?;
        if user_id.is_empty() || user_id.len() > 255 || user_id.contains('\0') {
            return Err(BillingError::invalid_argument(
                "id",
                "must be 1 to 255 characters, without NUL",
            ));
        }
        if email.trim().is_empty()
            || !email.contains('@')
            || email.len() > 255
            || email.contains('\0')
        {
            return Err(BillingError::invalid_argument(
                "email",
                "must be an email address",
            ));
        }
        if name.is_some_and(|name| name.contains('\0')) {
            return Err(BillingError::invalid_argument(
                "name",
                "must not contain NUL",
            ));
        }
        self.store.upsert_user(user_id, email, name).await
    }

    fn processor(&self) -> EventProcessor<'_> {
        EventProcessor {
            config: &self.config,
            store: &self.store,
            stripe: &self.stripe,
            listener: self.listener.as_deref(),
            trial_listener: self.trial_listener.as_deref(),
        }
    }

    /// Applies a verified event exactly once (see `events::processor`).
    pub async fn apply_event(self: &Arc<Self>, event: &EventEnvelope) -> BillingResult<Value> {
        self.ensure_open()?;
        let body = self.processor().process_general(event).await?.body();
        self.prune_ledger_when_due().await;
        Ok(body)
    }

    /// Takes a verified webhook payload and answers through `reply`, once.
    /// A subscription event goes to the store's batch writer and is answered
    /// after the commit that holds it; everything else, and whatever the
    /// writer declines, takes the general path on a task.
    pub fn receive_event(self: &Arc<Self>, payload: &[u8], reply: EventReply) {
        let reply = self.with_event_listener(payload, reply);
        if let Err(error) = self.ensure_open() {
            return reply(Err(error));
        }
        if carries_nul_text(payload) {
            // Not storable anywhere; a 5xx would have Stripe retry for days.
            return reply(Err(BillingError::PayloadInvalid(
                "the event carries text with a NUL character, which no database stores".into(),
            )));
        }
        if let Some(event) = read_subscription_event(payload) {
            let writer = self.store.batch_writer();
            let wanted = self
                .config
                .products
                .as_ref()
                .is_none_or(|products| event.snapshot.has_any_product(products));
            if wanted {
                let now = chrono::Utc::now().timestamp();
                let event_id = event.id.clone();
                let write = SubscriptionEventWrite {
                    event_id: event.id,
                    event_type: event.event_type,
                    event_created: event.created,
                    snapshot: event.snapshot,
                    notify_lease_until: self.listener.is_some().then_some(now + LEASE_SECS),
                    received_at: now,
                    // The writer prunes in the batch that holds this event.
                    prune_before: self.take_prune_slot(),
                };
                let service = Arc::clone(self);
                let payload = payload.to_vec();
                writer.submit(
                    write,
                    Box::new(move |result| service.after_write(event_id, payload, result, reply)),
                );
                return;
            }
        }
        let service = Arc::clone(self);
        let payload = payload.to_vec();
        self.runtime.spawn(async move {
            let result = service.apply_payload(&payload).await;
            reply(result);
        });
    }

    /// Answers an event the writer handled (on the writer's thread; anything
    /// that must await goes to a task).
    fn after_write(
        self: Arc<Self>,
        event_id: String,
        payload: Vec<u8>,
        result: BillingResult<WriteOutcome>,
        reply: EventReply,
    ) {
        match result {
            Ok(WriteOutcome::Applied {
                changed_user: Some(user_id),
            }) if self.listener.is_some() => {
                let runtime = self.runtime.clone();
                runtime.spawn(async move {
                    let delivered = self.processor().deliver(&event_id, &user_id).await;
                    reply(delivered.map(|notified| EventOutcome::Applied { notified }.body()));
                });
            }
            Ok(WriteOutcome::Applied { .. }) => {
                reply(Ok(EventOutcome::Applied { notified: false }.body()));
            }
            Ok(WriteOutcome::Duplicate) => {
                reply(Ok(EventOutcome::Duplicate { notified: false }.body()));
            }
            Ok(WriteOutcome::Declined) => {
                let runtime = self.runtime.clone();
                runtime.spawn(async move {
                    let result = async {
                        let event = read_payload(&payload)?;
                        self.ensure_open()?;
                        let body = self.processor().process_general(&event).await?.body();
                        self.prune_ledger_when_due().await;
                        Ok(body)
                    }
                    .await;
                    reply(result);
                });
            }
            Err(error) => reply(Err(error)),
        }
    }

    async fn apply_payload(self: &Arc<Self>, payload: &[u8]) -> BillingResult<Value> {
        let event = read_payload(payload)?;
        self.apply_event(&event).await
    }

    /// When this instance is due to prune the ledger (at most hourly), takes
    /// the slot and returns the cutoff: handled event ids received before it
    /// (`eventRetentionDays` ago) are deleted.
    fn take_prune_slot(&self) -> Option<i64> {
        let days = i64::from(self.config.event_retention_days);
        if days == 0 {
            return None;
        }
        let now = chrono::Utc::now().timestamp();
        let last = self.last_prune.load(AtomicOrdering::Relaxed);
        if now - last < PRUNE_INTERVAL_SECS {
            return None;
        }
        self.last_prune
            .compare_exchange(last, now, AtomicOrdering::Relaxed, AtomicOrdering::Relaxed)
            .ok()
            .map(|_| now - days * 86_400)
    }

    /// Prunes the ledger when due, before the webhook is answered. A failure
    /// here never fails the webhook.
    async fn prune_ledger_when_due(&self) {
        if let Some(before) = self.take_prune_slot() {
            let _ = self.store.prune_events(before).await;
        }
    }

    pub async fn close(&self) {
        self.store.close().await;
    }

    /// An explicit redirect URL, or `baseUrl` plus the default path.
    fn redirect_url(
        &self,
        name: &str,
        given: Option<&str>,
        default_path: &str,
    ) -> BillingResult<String> {
        match given {
            Some(url) => {
                if parse_http_url(url).is_none() {
                    return Err(BillingError::invalid_argument(
                        name,
                        "must be an absolute http(s) URL",
                    ));
                }
                Ok(url.to_owned())
            }
            None => match &self.config.base_url {
                Some(origin) => Ok(format!("{origin}{default_path}")),
                None => Err(BillingError::invalid_argument(
                    name,
                    "is required when the `baseUrl` option is not set",
                )),
            },
        }
    }
}

/// Metadata the server-side api passes on: Stripe's limits, and never our key.
fn check_metadata(metadata: &[(String, String)]) -> BillingResult<()> {
    if metadata.len() > STRIPE_METADATA_MAX_KEYS - 1 {
        return Err(BillingError::invalid_argument(
            "metadata",
            "has more than 49 keys (Stripe allows 50, one is kavach_user_id)",
        ));
    }
    for (key, value) in metadata {
        if key == USER_ID_METADATA_KEY {
            return Err(BillingError::invalid_argument(
                "metadata",
                "kavach_user_id is set by kavachos-stripe itself",
            ));
        }
        if key.is_empty()
            || key.chars().count() > STRIPE_METADATA_MAX_KEY_CHARS
            || key.contains(['[', ']'])
        {
            return Err(BillingError::invalid_argument(
                "metadata",
                "keys must be 1 to 40 characters without square brackets",
            ));
        }
        if value.chars().count() > STRIPE_METADATA_MAX_VALUE_CHARS {
            return Err(BillingError::invalid_argument(
                format!("metadata.{key}"),
                "is longer than 500 characters",
            ));
        }
    }
    Ok(())
}

/// The user's projected subscription, from the row's six columns.
pub fn subscription_view(user: &UserRecord, plans: &[Plan]) -> Option<SubscriptionView> {
    let id = user.stripe_subscription_id.clone()?;
    Some(SubscriptionView {
        id,
        status: user.stripe_subscription_status.clone().unwrap_or_default(),
        price_id: user.stripe_price_id.clone(),
        current_period_end: user.stripe_current_period_end,
        cancel_at_period_end: user.stripe_cancel_at_period_end,
        plan: plan_view(plans, user.stripe_price_id.as_deref()),
        payment_issue: None,
    })
}

/// A stored subscription as the subscription view shows it (its payment
/// issue is read separately).
pub fn subscription_view_of(sub: &StoredSubscription, plans: &[Plan]) -> SubscriptionView {
    SubscriptionView {
        id: sub.id.clone(),
        status: sub.status.clone(),
        price_id: sub.price_id.clone(),
        current_period_end: sub.current_period_end,
        cancel_at_period_end: sub.cancel_at_period_end || sub.cancel_at.is_some(),
        plan: plan_view(plans, sub.price_id.as_deref()),
        payment_issue: None,
    }
}

/// The envelope of a verified payload (the general reader).
fn read_payload(payload: &[u8]) -> BillingResult<EventEnvelope> {
    parse_event(payload).map_err(|e| BillingError::PayloadInvalid(e.to_string()))
}

fn string_field(object: &Value, name: &str) -> BillingResult<String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.contains('\0'))
        .map(str::to_owned)
        .ok_or_else(|| BillingError::StripeUnreachable(format!("Stripe's answer lacks `{name}`")))
}

/// Whether a JSON payload has a string holding NUL. JSON can only write NUL
/// escaped, so payloads without `\u0000` are passed at once; a payload with it
/// is parsed to tell a real NUL from an escaped backslash before `u0000`.
fn carries_nul_text(payload: &[u8]) -> bool {
    const ESCAPED_NUL: &[u8] = b"\\u0000";
    let mut from = 0;
    let mut escaped_nul = false;
    // Backslashes are rare in events: jump from one to the next.
    while let Some(offset) = payload[from..].iter().position(|&b| b == b'\\') {
        let at = from + offset;
        if payload[at..].starts_with(ESCAPED_NUL) {
            escaped_nul = true;
            break;
        }
        from = at + 1;
    }
    if !escaped_nul {
        return false;
    }
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map
                .iter()
                .any(|(key, value)| key.contains('\0') || has_nul(value)),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(payload).is_ok_and(|value| has_nul(&value))
}

#[cfg(test)]
mod tests {
    use super::carries_nul_text;

    #[test]
    fn nul_text_is_found_wherever_it_is_and_only_there() {
        assert!(carries_nul_text(br#"{"id":"evt_\u0000"}"#));
        assert!(carries_nul_text(br#"{"a":[1,{"b":"x\u0000y"}]}"#));
        assert!(carries_nul_text(br#"{"k\u0000":1}"#));
        assert!(
            !carries_nul_text(br#"{"id":"evt_\\u0000"}"#),
            "an escaped backslash"
        );
        assert!(!carries_nul_text(br#"{"id":"evt_1","path":"a\/b"}"#));
        assert!(!carries_nul_text(b"not json \\u0000"));
    }
}
