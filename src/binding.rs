//! The `#[napi]` layer: converts JS values to core types and back, nothing
//! else. A failure crosses as a JS error whose message is a JSON document
//! `{ code, message, stripe? }`; the JS wrapper rebuilds it into an `Error`
//! with `code` (or a `StripeApiError`), in one place.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::{
    Buffer, BufferSlice, FnArgs, Function, JsObjectValue, Object, Promise, PromiseRaw, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Either, Env, JsValue, ValueType};
use napi_derive::napi;

use crate::billing::lifecycle::PlanChange;
use crate::billing::plans::PlanView;
use crate::billing::status::{BillingStatus, SubscriptionFilter};
use crate::billing::{BillingService, CheckoutOptions, PriceChoice, SubscriptionView};
use crate::config::{BillingConfig, ConfigMode};
use crate::error::{redact_secrets, BillingError};
use crate::events::{EventListener, PaymentIssue, SubscriptionListener, TrialListener};
use crate::http::{
    self, HttpRequest, Route, WebhookBody, WebhookResponder, ENDPOINTS, MAX_JSON_BODY_BYTES,
};
use crate::option_value::OptionValue;
use crate::store::{DatabaseOptions, DatabaseSource};
use crate::webhook::{self, check_event};

/// Maps a core error once, at the boundary.
pub(crate) fn to_js(error: BillingError) -> napi::Error {
    let mut document =
        serde_json::json!({ "code": error.code(), "message": error.public_message() });
    if let BillingError::StripeApi(details) = &error {
        let mut details = details.as_ref().clone();
        details.message = redact_secrets(&details.message);
        document["stripe"] = serde_json::json!(details);
    }
    napi::Error::new(napi::Status::GenericFailure, document.to_string())
}

pub(crate) fn coded(code: &str, message: impl Into<String>) -> napi::Error {
    let document = serde_json::json!({ "code": code, "message": redact_secrets(&message.into()) });
    napi::Error::new(napi::Status::GenericFailure, document.to_string())
}

/// Runs an async operation on its own task so that a panic inside it becomes
/// an `internal_error` naming the panic, rather than a bare rejection.
async fn guarded<T: Send + 'static>(
    operation: impl Future<Output = napi::Result<T>> + Send + 'static,
) -> napi::Result<T> {
    match tokio::spawn(operation).await {
        Ok(result) => result,
        Err(joined) if joined.is_panic() => {
            let payload = joined.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "no message".to_owned());
            Err(coded(
                "internal_error",
                format!("kavachos-stripe panicked and did not complete the operation: {message}"),
            ))
        }
        Err(_) => Err(coded("internal_error", "the operation was cancelled")),
    }
}

const MAX_OPTION_DEPTH: usize = 8;

/// Reads a JS value into the options model, without calling into user code
/// beyond plain property reads.
pub(crate) fn option_value(value: &Unknown<'_>, depth: usize) -> napi::Result<OptionValue> {
    Ok(match value.get_type()? {
        ValueType::Undefined => OptionValue::Undefined,
        ValueType::Null => OptionValue::Null,
        ValueType::Boolean => OptionValue::Bool(unsafe { value.cast::<bool>()? }),
        ValueType::Number => OptionValue::Number(unsafe { value.cast::<f64>()? }),
        ValueType::String => OptionValue::String(unsafe { value.cast::<String>()? }),
        ValueType::Function => OptionValue::Function,
        ValueType::Object if depth >= MAX_OPTION_DEPTH => {
            OptionValue::Other("a deeply nested object")
        }
        ValueType::Object => {
            let object: Object<'_> = unsafe { value.cast()? };
            if object.is_array()? {
                let length = object.get_array_length()?;
                let mut items = Vec::with_capacity(length.min(1024) as usize);
                for index in 0..length.min(1024) {
                    let item: Unknown<'_> = object.get_element(index)?;
                    items.push(option_value(&item, depth + 1)?);
                }
                OptionValue::Array(items)
            } else {
                let mut entries = Vec::new();
                for key in Object::keys(&object)? {
                    let item: Unknown<'_> = object.get_named_property(&key)?;
                    entries.push((key, option_value(&item, depth + 1)?));
                }
                OptionValue::Object(entries)
            }
        }
        ValueType::Symbol => OptionValue::Other("a symbol"),
        ValueType::BigInt => OptionValue::Other("a bigint"),
        _ => OptionValue::Other("an unsupported value"),
    })
}

type ListenerArgs = FnArgs<(String, NativeSubscription)>;
/// Weak: a stored listener must not keep the Node process alive.
type ListenerFunction =
    ThreadsafeFunction<ListenerArgs, Promise<()>, ListenerArgs, napi::Status, false, true>;

/// `onSubscriptionChange`, callable from any tokio task.
struct JsSubscriptionListener(Arc<ListenerFunction>);

impl SubscriptionListener for JsSubscriptionListener {
    fn notify(
        &self,
        user_id: String,
        subscription: SubscriptionView,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let function = Arc::clone(&self.0);
        Box::pin(async move {
            let args: ListenerArgs = (user_id, native_subscription(subscription)).into();
            // call_async_catch: a callback that throws becomes an Err, not a crash.
            let promise = function
                .call_async_catch(args)
                .await
                .map_err(|e| e.reason.clone())?;
            promise.await.map_err(|e| e.reason.clone())
        })
    }
}

type TrialArgs = FnArgs<(String, NativeTrialEnd)>;
type TrialFunction =
    ThreadsafeFunction<TrialArgs, Promise<()>, TrialArgs, napi::Status, false, true>;

/// `onTrialWillEnd`'s second argument.
#[napi(object)]
pub struct NativeTrialEnd {
    pub trial_ends_at: chrono::DateTime<chrono::Utc>,
    pub subscription: NativeSubscription,
}

/// `onTrialWillEnd`, callable from any tokio task.
struct JsTrialListener(Arc<TrialFunction>);

impl TrialListener for JsTrialListener {
    fn trial_will_end(
        &self,
        user_id: String,
        trial_ends_at: i64,
        subscription: SubscriptionView,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let function = Arc::clone(&self.0);
        Box::pin(async move {
            let trial_ends_at = chrono::DateTime::from_timestamp(trial_ends_at, 0)
                .ok_or_else(|| "the trial end is out of range".to_owned())?;
            let args: TrialArgs = (
                user_id,
                NativeTrialEnd {
                    trial_ends_at,
                    subscription: native_subscription(subscription),
                },
            )
                .into();
            let promise = function
                .call_async_catch(args)
                .await
                .map_err(|e| e.reason.clone())?;
            promise.await.map_err(|e| e.reason.clone())
        })
    }
}

type EventArgs = FnArgs<(String,)>;
type EventFunction =
    ThreadsafeFunction<EventArgs, Promise<()>, EventArgs, napi::Status, false, true>;

/// `onEvent` (the JS wrapper parses the JSON it gets), callable from any tokio task.
struct JsEventListener(Arc<EventFunction>);

impl EventListener for JsEventListener {
    fn event(&self, payload: String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let function = Arc::clone(&self.0);
        Box::pin(async move {
            let promise = function
                .call_async_catch((payload,).into())
                .await
                .map_err(|e| e.reason.clone())?;
            promise.await.map_err(|e| e.reason.clone())
        })
    }
}

/// A JS callback as a weak thread-safe function (a stored callback must not
/// keep the Node process alive).
fn weak_function<Args: napi::bindgen_prelude::JsValuesTupleIntoVec + 'static>(
    function: Function<'_, Args, Promise<()>>,
) -> napi::Result<ThreadsafeFunction<Args, Promise<()>, Args, napi::Status, false, true>> {
    function
        .build_threadsafe_function()
        .callee_handled::<false>()
        .weak::<true>()
        .build()
        .map_err(|e| coded("internal_error", e.reason))
}

/// Validated options, held by the JS plugin object between `stripe()` and `init`.
#[napi]
pub struct NativeConfig {
    config: BillingConfig,
    listener: Option<Arc<dyn SubscriptionListener>>,
    trial_listener: Option<Arc<dyn TrialListener>>,
    event_listener: Option<Arc<dyn EventListener>>,
}

/// Validates `stripe()` options (`standalone: false`) or
/// `createStripeBilling()` options (`standalone: true`), synchronously.
/// `listener` is `onSubscriptionChange` wrapped to always return a Promise.
#[napi(
    catch_unwind,
    ts_args_type = "options: unknown, standalone: boolean, listener?: ((userId: string, subscription: NativeSubscription) => Promise<void>) | undefined | null, trialListener?: ((userId: string, trial: NativeTrialEnd) => Promise<void>) | undefined | null, eventListener?: ((payload: string) => Promise<void>) | undefined | null"
)]
pub fn parse_options(
    options: Unknown<'_>,
    standalone: bool,
    listener: Option<Function<'_, ListenerArgs, Promise<()>>>,
    trial_listener: Option<Function<'_, TrialArgs, Promise<()>>>,
    event_listener: Option<Function<'_, EventArgs, Promise<()>>>,
) -> napi::Result<NativeConfig> {
    let value = option_value(&options, 0).map_err(|e| coded("invalid_config", e.reason))?;
    let mode = if standalone {
        ConfigMode::Standalone
    } else {
        ConfigMode::Plugin
    };
    let config = BillingConfig::parse(&value, mode).map_err(to_js)?;
    let listener = match listener {
        Some(function) => Some(
            Arc::new(JsSubscriptionListener(Arc::new(weak_function(function)?)))
                as Arc<dyn SubscriptionListener>,
        ),
        None => None,
    };
    let trial_listener = match trial_listener {
        Some(function) => Some(
            Arc::new(JsTrialListener(Arc::new(weak_function(function)?))) as Arc<dyn TrialListener>,
        ),
        None => None,
    };
    let event_listener = match event_listener {
        Some(function) => Some(
            Arc::new(JsEventListener(Arc::new(weak_function(function)?))) as Arc<dyn EventListener>,
        ),
        None => None,
    };
    Ok(NativeConfig {
        config,
        listener,
        trial_listener,
        event_listener,
    })
}

#[napi]
impl NativeConfig {
    /// Opens the store (the `database` option, else the host's database) and
    /// runs the migrations.
    #[napi(
        ts_args_type = "hostDatabase: unknown",
        ts_return_type = "Promise<NativeBilling>"
    )]
    pub fn open<'env>(
        &self,
        env: &'env Env,
        host_database: Unknown<'_>,
    ) -> napi::Result<PromiseRaw<'env, NativeBilling>> {
        let config = self.config.clone();
        let listener = self.listener.clone();
        let trial_listener = self.trial_listener.clone();
        let event_listener = self.event_listener.clone();
        let (database, source) = match &config.database {
            Some(own) => (own.clone(), DatabaseSource::Options),
            None => {
                let host = option_value(&host_database, 0)
                    .map_err(|e| coded("database_unsupported", e.reason))?;
                (
                    DatabaseOptions::from_host(&host).map_err(to_js)?,
                    DatabaseSource::Host,
                )
            }
        };
        env.spawn_future(async move {
            let service = BillingService::open(
                config,
                &database,
                source,
                listener,
                trial_listener,
                event_listener,
            )
            .await
            .map_err(to_js)?;
            Ok(NativeBilling {
                service: Arc::new(service),
                replies: OnceLock::new(),
            })
        })
        .map_err(|e| coded("internal_error", e.reason))
    }
}

#[napi(object)]
pub struct NativeEndpoint {
    pub method: String,
    pub path: String,
    pub require_auth: bool,
    pub description: String,
    /// Bytes of body the wrapper reads at most before answering 413.
    pub body_limit: f64,
    /// Served by `handleWebhook` (body and signature only) instead of `handle`.
    pub is_webhook: bool,
    /// `metadata.rateLimit` for the host, when the route has one.
    pub rate_limit: Option<NativeRateLimit>,
}

#[napi(object)]
pub struct NativeRateLimit {
    pub window: u32,
    pub max: u32,
}

#[napi(object)]
pub struct NativeRequest {
    pub url: String,
    /// `[name, value]` pairs.
    pub headers: Vec<Vec<String>>,
    pub body: Buffer,
    pub body_too_large: bool,
}

#[napi(object)]
pub struct NativeResponse {
    pub status: u32,
    pub headers: Vec<Vec<String>>,
    pub body: String,
}

#[napi(object, use_nullable = true)]
pub struct NativeSubscription {
    pub id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub cancel_at_period_end: bool,
    pub plan: Option<NativePlan>,
    pub payment_issue: Option<NativePaymentIssue>,
}

#[napi(object, use_nullable = true)]
pub struct NativePaymentIssue {
    pub invoice_id: String,
    pub reason: String,
    pub amount_due: Option<i64>,
    pub currency: Option<String>,
    pub attempt_count: i64,
    pub next_payment_attempt: Option<chrono::DateTime<chrono::Utc>>,
    pub hosted_invoice_url: Option<String>,
}

fn native_issue(issue: PaymentIssue) -> NativePaymentIssue {
    NativePaymentIssue {
        invoice_id: issue.invoice_id,
        reason: issue.reason.to_owned(),
        amount_due: issue.amount_due,
        currency: issue.currency,
        attempt_count: issue.attempt_count,
        next_payment_attempt: date(issue.next_payment_attempt),
        hosted_invoice_url: issue.hosted_invoice_url,
    }
}

#[napi(object)]
pub struct NativePlan {
    pub name: String,
    pub limits: std::collections::HashMap<String, f64>,
    pub annual: bool,
}

/// `{ plan, annual? }` in place of a price id.
#[napi(object)]
pub struct NativePlanChoice {
    pub plan: String,
    pub annual: Option<bool>,
}

/// `changePlan` / `previewPlanChange` arguments.
#[napi(object)]
pub struct NativePlanChange {
    pub price_id: Option<String>,
    pub plan: Option<String>,
    pub annual: Option<bool>,
    pub quantity: Option<u32>,
    pub proration_behavior: Option<String>,
    /// Unix seconds, as `previewPlanChange` returns it.
    pub proration_date: Option<i64>,
    pub subscription_id: Option<String>,
}

#[napi(object, use_nullable = true)]
pub struct NativePendingUpdate {
    pub invoice_id: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[napi(object, use_nullable = true)]
pub struct NativePlanChangeResult {
    pub subscription: NativeSubscription,
    pub pending: Option<NativePendingUpdate>,
}

#[napi(object, use_nullable = true)]
pub struct NativePreviewLine {
    pub description: Option<String>,
    pub amount: i64,
    pub proration: bool,
    pub price_id: Option<String>,
}

#[napi(object)]
pub struct NativePlanChangePreview {
    pub amount_due: i64,
    pub currency: String,
    pub proration_date: i64,
    pub lines: Vec<NativePreviewLine>,
}

#[napi(object)]
pub struct NativeInvoiceListOptions {
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

#[napi(object, use_nullable = true)]
pub struct NativeInvoice {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub period_start: Option<chrono::DateTime<chrono::Utc>>,
    pub period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
}

#[napi(object)]
pub struct NativeInvoicePage {
    pub invoices: Vec<NativeInvoice>,
    pub has_more: bool,
}

#[napi(object)]
pub struct NativeReconcileOptions {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[napi(object)]
pub struct NativeReconcileCounts {
    pub fetched: f64,
    pub applied: f64,
    pub duplicates: f64,
    pub ignored: f64,
    pub failed: f64,
}

#[napi(object)]
pub struct NativeSubscriptionOptions {
    pub immediately: Option<bool>,
    pub subscription_id: Option<String>,
    pub session_id: Option<String>,
}

fn plan_change(change: NativePlanChange) -> napi::Result<PlanChange> {
    let price = match (change.price_id, change.plan) {
        (Some(_), Some(_)) => {
            return Err(to_js(BillingError::invalid_argument(
                "plan",
                "cannot be combined with priceId; give one of them",
            )))
        }
        (None, None) => {
            return Err(to_js(BillingError::invalid_argument(
                "priceId",
                "or `plan` is required",
            )))
        }
        (Some(_), None) if change.annual.is_some() => {
            return Err(to_js(BillingError::invalid_argument(
                "annual",
                "goes with `plan`; a priceId already says which price",
            )))
        }
        (Some(price_id), None) => PriceChoice::Price(price_id),
        (None, Some(name)) => PriceChoice::Plan {
            name,
            annual: change.annual.unwrap_or(false),
        },
    };
    Ok(PlanChange {
        price,
        quantity: change.quantity,
        proration_behavior: change.proration_behavior,
        proration_date: change.proration_date,
        subscription_id: change.subscription_id,
    })
}

#[napi(object)]
pub struct NativeSubscriptionFilter {
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub plan: Option<String>,
}

#[napi(object, use_nullable = true)]
pub struct NativeBillingStatus {
    pub active: bool,
    pub status: Option<String>,
    pub plan: Option<NativePlan>,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub on_trial: bool,
    pub trial_ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub scheduled_to_cancel: bool,
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub on_grace_period: bool,
    pub past_due: bool,
    pub payment_issue: Option<NativePaymentIssue>,
}

#[napi(object)]
pub struct NativeCheckoutOptions {
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub trial_days: Option<u32>,
    pub metadata: Option<std::collections::HashMap<String, String>>,
}

#[napi(object)]
pub struct NativeCheckoutSession {
    pub url: String,
    pub session_id: String,
    pub trial_granted: bool,
}

fn date(seconds: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    seconds.and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
}

fn native_plan(view: PlanView) -> NativePlan {
    NativePlan {
        name: view.name,
        limits: view.limits.into_iter().collect(),
        annual: view.annual,
    }
}

fn native_subscription(view: SubscriptionView) -> NativeSubscription {
    NativeSubscription {
        id: view.id,
        status: view.status,
        price_id: view.price_id,
        current_period_end: date(view.current_period_end),
        cancel_at_period_end: view.cancel_at_period_end,
        plan: view.plan.map(native_plan),
        payment_issue: view.payment_issue.map(native_issue),
    }
}

fn native_status(status: BillingStatus) -> NativeBillingStatus {
    NativeBillingStatus {
        active: status.active,
        status: status.status,
        plan: status.plan.map(native_plan),
        price_id: status.price_id,
        product_id: status.product_id,
        quantity: status.quantity,
        current_period_end: date(status.current_period_end),
        on_trial: status.on_trial,
        trial_ends_at: date(status.trial_ends_at),
        scheduled_to_cancel: status.scheduled_to_cancel,
        ends_at: date(status.ends_at),
        on_grace_period: status.on_grace_period,
        past_due: status.past_due,
        payment_issue: status.payment_issue.map(native_issue),
    }
}

/// The contract's routing: the endpoint path a request maps to, if any.
#[napi(catch_unwind)]
pub fn match_route(method: String, path: String, base_path: String) -> Option<String> {
    http::match_route(&method, &path, &base_path).map(|route| route.endpoint().path.to_owned())
}

fn signature_arguments(
    secret: Either<String, Vec<String>>,
    tolerance: Option<f64>,
) -> napi::Result<(Vec<String>, u64)> {
    let secrets = match secret {
        Either::A(one) => vec![one],
        Either::B(many) => many,
    };
    let tolerance = match tolerance {
        None => crate::config::DEFAULT_WEBHOOK_TOLERANCE_SECS,
        Some(t) if t.is_finite() && t >= 0.0 => t as u64,
        Some(_) => {
            return Err(coded(
                "invalid_argument",
                "invalid argument `tolerance`: must be a non-negative number of seconds",
            ))
        }
    };
    Ok((secrets, tolerance))
}

fn payload_bytes<'a>(payload: &'a Either<BufferSlice<'_>, String>) -> &'a [u8] {
    match payload {
        Either::A(buffer) => buffer,
        Either::B(text) => text.as_bytes(),
    }
}

fn verify_payload(
    payload: &Either<BufferSlice<'_>, String>,
    header: &str,
    secret: Either<String, Vec<String>>,
    tolerance: Option<f64>,
) -> napi::Result<()> {
    let (secrets, tolerance) = signature_arguments(secret, tolerance)?;
    webhook::verify_signature(
        payload_bytes(payload),
        header,
        &secrets,
        tolerance,
        chrono::Utc::now().timestamp(),
    )
    .map(|_| ())
    .map_err(|e| coded(e.code(), e.to_string()))
}

/// Verifies `Stripe-Signature` over the raw payload (nothing else).
#[napi(catch_unwind)]
pub fn verify_signature(
    payload: Either<BufferSlice<'_>, String>,
    header: String,
    secret: Either<String, Vec<String>>,
    tolerance: Option<f64>,
) -> napi::Result<()> {
    verify_payload(&payload, &header, secret, tolerance)
}

/// Verifies a webhook and checks that it is a snapshot event (the SDK's
/// `constructEvent`); the JS wrapper parses the verified payload.
#[napi(catch_unwind)]
pub fn construct_event(
    payload: Either<BufferSlice<'_>, String>,
    header: String,
    secret: Either<String, Vec<String>>,
    tolerance: Option<f64>,
) -> napi::Result<()> {
    verify_payload(&payload, &header, secret, tolerance)?;
    check_event(payload_bytes(&payload)).map_err(|e| coded("payload_invalid", e.to_string()))
}

type ReplyArgs = FnArgs<(u32, u32, String)>;
/// Weak, like the listener: the JS wrapper keeps the process alive while a
/// webhook waits for its answer.
type ReplyFunction = ThreadsafeFunction<ReplyArgs, (), ReplyArgs, napi::Status, false, true>;

#[napi]
pub struct NativeBilling {
    service: Arc<BillingService>,
    replies: OnceLock<Arc<ReplyFunction>>,
}

#[napi]
impl NativeBilling {
    #[napi(catch_unwind)]
    pub fn endpoints(&self) -> Vec<NativeEndpoint> {
        ENDPOINTS
            .iter()
            .map(|e| NativeEndpoint {
                method: e.method.to_owned(),
                path: e.path.to_owned(),
                require_auth: e.require_auth,
                description: e.description.to_owned(),
                body_limit: match e.route {
                    Route::Webhook => self.service.config().max_webhook_bytes as f64,
                    _ => MAX_JSON_BODY_BYTES as f64,
                },
                is_webhook: e.route == Route::Webhook,
                rate_limit: e
                    .rate_limit
                    .map(|(window, max)| NativeRateLimit { window, max }),
            })
            .collect()
    }

    #[napi]
    pub async fn handle(
        &self,
        path: String,
        request: NativeRequest,
        user_id: Option<String>,
    ) -> napi::Result<NativeResponse> {
        let route = Route::from_path(&path)
            .ok_or_else(|| coded("internal_error", format!("no endpoint {path}")))?;
        let request = HttpRequest {
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .filter_map(|pair| match <[String; 2]>::try_from(pair) {
                    Ok([name, value]) => Some((name.to_ascii_lowercase(), value)),
                    Err(_) => None,
                })
                .collect(),
            body: request.body.to_vec(),
            body_too_large: request.body_too_large,
        };
        let service = Arc::clone(&self.service);
        let reply = guarded(async move {
            Ok(http::handle(&service, route, &request, user_id.as_deref()).await)
        })
        .await?;
        Ok(NativeResponse {
            status: u32::from(reply.status),
            headers: reply.headers.into_iter().map(|(k, v)| vec![k, v]).collect(),
            body: reply.body,
        })
    }

    /// Where webhook answers go: `deliver(ticket, status, body)` (a JSON
    /// body), called on the JS thread; set once, by the JS wrapper.
    #[napi(
        catch_unwind,
        ts_args_type = "deliver: (ticket: number, status: number, body: string) => void"
    )]
    pub fn on_webhook_reply(&self, deliver: Function<'_, ReplyArgs, ()>) -> napi::Result<()> {
        let tsfn = deliver
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(|e| coded("internal_error", e.reason))?;
        self.replies
            .set(Arc::new(tsfn))
            .map_err(|_| coded("internal_error", "webhook answers already have a receiver"))
    }

    /// The webhook route: the raw body (`null` when it was longer than the
    /// route's limit) and the `Stripe-Signature` header. The answer goes to
    /// the `onWebhookReply` receiver under `ticket`, after the commit that
    /// holds the event.
    #[napi(catch_unwind)]
    pub fn handle_webhook(
        &self,
        ticket: u32,
        body: Option<BufferSlice<'_>>,
        signature: Option<String>,
    ) -> napi::Result<()> {
        let replies = Arc::clone(
            self.replies
                .get()
                .ok_or_else(|| coded("internal_error", "no receiver for webhook answers"))?,
        );
        let payload = match &body {
            Some(bytes) => WebhookBody::Bytes(bytes),
            None => WebhookBody::TooLarge,
        };
        http::receive_webhook(
            &self.service,
            payload,
            signature.as_deref(),
            WebhookResponder::new(move |reply| {
                let args: ReplyArgs = (ticket, u32::from(reply.status), reply.body).into();
                // Fails only while Node tears the environment down.
                let _ = replies.call(args, ThreadsafeFunctionCallMode::NonBlocking);
            }),
        );
        Ok(())
    }

    #[napi]
    pub async fn create_customer(
        &self,
        user_id: String,
        email: String,
        name: Option<String>,
    ) -> napi::Result<String> {
        let service = Arc::clone(&self.service);
        guarded(async move {
            service
                .create_customer(&user_id, &email, name.as_deref())
                .await
                .map_err(to_js)
        })
        .await
    }

    #[napi]
    pub async fn get_customer_id(&self, user_id: String) -> napi::Result<Option<String>> {
        let service = Arc::clone(&self.service);
        guarded(async move { service.get_customer_id(&user_id).await.map_err(to_js) }).await
    }

    #[napi]
    pub async fn create_checkout_session(
        &self,
        user_id: String,
        price_or_plan: Either<String, NativePlanChoice>,
        options: Option<NativeCheckoutOptions>,
    ) -> napi::Result<NativeCheckoutSession> {
        let choice = match price_or_plan {
            Either::A(price_id) => PriceChoice::Price(price_id),
            Either::B(choice) => PriceChoice::Plan {
                name: choice.plan,
                annual: choice.annual.unwrap_or(false),
            },
        };
        let options = options
            .map(|o| CheckoutOptions {
                success_url: o.success_url,
                cancel_url: o.cancel_url,
                trial_days: o.trial_days,
                metadata: o
                    .metadata
                    .map(|m| m.into_iter().collect())
                    .unwrap_or_default(),
            })
            .unwrap_or_default();
        let service = Arc::clone(&self.service);
        let session = guarded(async move {
            service
                .create_checkout_session(&user_id, &choice, &options)
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(NativeCheckoutSession {
            url: session.url,
            session_id: session.session_id,
            trial_granted: session.trial_granted,
        })
    }

    #[napi]
    pub async fn change_plan(
        &self,
        user_id: String,
        change: NativePlanChange,
    ) -> napi::Result<NativePlanChangeResult> {
        let change = plan_change(change)?;
        let service = Arc::clone(&self.service);
        let result =
            guarded(async move { service.change_plan(&user_id, &change).await.map_err(to_js) })
                .await?;
        Ok(NativePlanChangeResult {
            subscription: native_subscription(result.subscription),
            pending: result.pending.map(|p| NativePendingUpdate {
                invoice_id: p.invoice_id,
                hosted_invoice_url: p.hosted_invoice_url,
                expires_at: date(p.expires_at),
            }),
        })
    }

    #[napi]
    pub async fn preview_plan_change(
        &self,
        user_id: String,
        change: NativePlanChange,
    ) -> napi::Result<NativePlanChangePreview> {
        let change = plan_change(change)?;
        let service = Arc::clone(&self.service);
        let preview = guarded(async move {
            service
                .preview_plan_change(&user_id, &change)
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(NativePlanChangePreview {
            amount_due: preview.amount_due,
            currency: preview.currency,
            proration_date: preview.proration_date,
            lines: preview
                .lines
                .into_iter()
                .map(|line| NativePreviewLine {
                    description: line.description,
                    amount: line.amount,
                    proration: line.proration,
                    price_id: line.price_id,
                })
                .collect(),
        })
    }

    #[napi]
    pub async fn cancel_subscription(
        &self,
        user_id: String,
        options: Option<NativeSubscriptionOptions>,
    ) -> napi::Result<NativeSubscription> {
        let immediately = options
            .as_ref()
            .and_then(|o| o.immediately)
            .unwrap_or(false);
        let subscription_id = options.and_then(|o| o.subscription_id);
        let service = Arc::clone(&self.service);
        let view = guarded(async move {
            service
                .cancel_subscription(&user_id, immediately, subscription_id.as_deref())
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(native_subscription(view))
    }

    #[napi]
    pub async fn resume_subscription(
        &self,
        user_id: String,
        options: Option<NativeSubscriptionOptions>,
    ) -> napi::Result<NativeSubscription> {
        let subscription_id = options.and_then(|o| o.subscription_id);
        let service = Arc::clone(&self.service);
        let view = guarded(async move {
            service
                .resume_subscription(&user_id, subscription_id.as_deref())
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(native_subscription(view))
    }

    #[napi]
    pub async fn sync_subscription(
        &self,
        user_id: String,
        options: Option<NativeSubscriptionOptions>,
    ) -> napi::Result<Option<NativeSubscription>> {
        let session_id = options.and_then(|o| o.session_id);
        let service = Arc::clone(&self.service);
        let view = guarded(async move {
            service
                .sync_subscription(&user_id, session_id.as_deref())
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(view.map(native_subscription))
    }

    #[napi]
    pub async fn list_invoices(
        &self,
        user_id: String,
        options: Option<NativeInvoiceListOptions>,
    ) -> napi::Result<NativeInvoicePage> {
        let (limit, starting_after) = options
            .map(|o| (o.limit, o.starting_after))
            .unwrap_or_default();
        let service = Arc::clone(&self.service);
        let page = guarded(async move {
            service
                .list_invoices(&user_id, limit, starting_after.as_deref())
                .await
                .map_err(to_js)
        })
        .await?;
        Ok(NativeInvoicePage {
            invoices: page
                .invoices
                .into_iter()
                .map(|i| NativeInvoice {
                    created: date(Some(i.created)).unwrap_or_default(),
                    id: i.id,
                    number: i.number,
                    status: i.status,
                    amount_due: i.amount_due,
                    amount_paid: i.amount_paid,
                    currency: i.currency,
                    period_start: date(i.period_start),
                    period_end: date(i.period_end),
                    hosted_invoice_url: i.hosted_invoice_url,
                    invoice_pdf: i.invoice_pdf,
                })
                .collect(),
            has_more: page.has_more,
        })
    }

    #[napi]
    pub async fn reconcile(
        &self,
        options: Option<NativeReconcileOptions>,
    ) -> napi::Result<NativeReconcileCounts> {
        let (since, until) = options
            .map(|o| {
                (
                    o.since.map(|d| d.timestamp()),
                    o.until.map(|d| d.timestamp()),
                )
            })
            .unwrap_or_default();
        let service = Arc::clone(&self.service);
        let counts =
            guarded(async move { service.reconcile(since, until).await.map_err(to_js) }).await?;
        Ok(NativeReconcileCounts {
            fetched: counts.fetched as f64,
            applied: counts.applied as f64,
            duplicates: counts.duplicates as f64,
            ignored: counts.ignored as f64,
            failed: counts.failed as f64,
        })
    }

    #[napi]
    pub async fn get_billing_status(&self, user_id: String) -> napi::Result<NativeBillingStatus> {
        let service = Arc::clone(&self.service);
        let status =
            guarded(async move { service.billing_status(&user_id).await.map_err(to_js) }).await?;
        Ok(native_status(status))
    }

    #[napi]
    pub async fn has_active_subscription(
        &self,
        user_id: String,
        filter: Option<NativeSubscriptionFilter>,
    ) -> napi::Result<bool> {
        let filter = filter
            .map(|f| SubscriptionFilter {
                price_id: f.price_id,
                product_id: f.product_id,
                plan: f.plan,
            })
            .unwrap_or_default();
        let service = Arc::clone(&self.service);
        guarded(async move {
            service
                .has_active_subscription(&user_id, &filter)
                .await
                .map_err(to_js)
        })
        .await
    }

    #[napi]
    pub async fn create_portal_session(
        &self,
        user_id: String,
        return_url: String,
    ) -> napi::Result<String> {
        let service = Arc::clone(&self.service);
        guarded(async move {
            service
                .create_portal_session(&user_id, &return_url)
                .await
                .map_err(to_js)
        })
        .await
    }

    #[napi]
    pub async fn get_subscription(
        &self,
        user_id: String,
    ) -> napi::Result<Option<NativeSubscription>> {
        let service = Arc::clone(&self.service);
        let view =
            guarded(async move { service.get_subscription(&user_id).await.map_err(to_js) }).await?;
        Ok(view.map(native_subscription))
    }

    #[napi]
    pub async fn upsert_user(
        &self,
        id: String,
        email: String,
        name: Option<String>,
    ) -> napi::Result<()> {
        let service = Arc::clone(&self.service);
        guarded(async move {
            service
                .upsert_user(&id, &email, name.as_deref())
                .await
                .map_err(to_js)
        })
        .await
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let service = Arc::clone(&self.service);
        guarded(async move {
            service.close().await;
            Ok(())
        })
        .await
    }
}

/// Diagnostics, not public API: panics inside the addon to show that a Rust
/// panic reaches JavaScript as a thrown Error (synchronous calls are wrapped in
/// `catch_unwind`) or a rejected Promise (async work runs `guarded`), never as
/// a crashed Node process.
#[napi(catch_unwind, js_name = "__panicProbe")]
pub fn panic_probe() -> napi::Result<()> {
    std::panic::panic_any("kavachos-stripe panic probe (synchronous)".to_owned())
}

#[napi(js_name = "__panicProbeAsync")]
pub async fn panic_probe_async() -> napi::Result<()> {
    guarded(async {
        std::panic::panic_any::<String>("kavachos-stripe panic probe (async)".to_owned())
    })
    .await
}
