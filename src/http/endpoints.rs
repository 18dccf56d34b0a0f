//! The endpoints' behaviour: a request's parts in, a JSON reply out. The JS
//! wrapper only turns a `Request` into `HttpRequest` and `HttpReply` into a
//! `Response`.

use serde_json::{json, Map, Value};

use super::body::{parse_json_object, BodyFields};
use super::routes::Route;
use super::webhook::{receive_webhook, WebhookBody, WebhookResponder};
use crate::billing::invoices::MAX_INVOICE_PAGE;
use crate::billing::lifecycle::PlanChange;
use crate::billing::status::BillingStatus;
use crate::billing::{
    BillingService, CheckoutOptions, PriceChoice, SubscriptionView, DEFAULT_CANCEL_PATH,
    DEFAULT_SUCCESS_PATH,
};
use crate::config::{
    is_stripe_id, STRIPE_METADATA_MAX_KEYS, STRIPE_METADATA_MAX_KEY_CHARS,
    STRIPE_METADATA_MAX_VALUE_CHARS,
};
use crate::error::BillingError;
use crate::events::PaymentIssue;
use crate::origin::{origin_of, parse_http_url};
use std::sync::Arc;

const INTERNAL_ERROR_MESSAGE: &str = "Internal error in the billing plugin";

#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// The full request URL (its origin is the request's own origin).
    pub url: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than the route's limit and was not read whole.
    pub body_too_large: bool,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn error(status: u16, message: &str, code: &str) -> Self {
        Self::json(status, &json!({ "error": message, "code": code }))
    }

    /// A fault of this package, not described to a browser in detail.
    pub fn internal_error() -> Self {
        Self::error(500, INTERNAL_ERROR_MESSAGE, "internal_error")
    }

    pub fn from_error(error: &BillingError) -> Self {
        let status = error.http_status();
        // Faults of our own are not described to a browser in detail.
        let message = match error {
            BillingError::Database(_) | BillingError::Migration(_) => {
                "The billing database is unavailable".to_owned()
            }
            BillingError::Internal(_) => INTERNAL_ERROR_MESSAGE.to_owned(),
            // Our credentials failing is the server's business; the calling
            // code gets Stripe's (redacted) message and request id.
            BillingError::StripeApi(stripe) if matches!(stripe.status_code, 401 | 403) => {
                "Stripe refused this server's credentials; check the `secretKey` configuration"
                    .to_owned()
            }
            other => other.public_message(),
        };
        let mut body = json!({ "error": message, "code": error.code() });
        let mut reply_headers = Vec::new();
        if let BillingError::StripeApi(stripe) = error {
            body["requestId"] = json!(stripe.request_id);
            if stripe.status_code == 429 {
                let retry_after = stripe.retry_after.unwrap_or(1).to_string();
                reply_headers.push(("retry-after".to_owned(), retry_after));
            }
        }
        if let BillingError::RateLimited { retry_after_secs } = error {
            reply_headers.push(("retry-after".to_owned(), retry_after_secs.to_string()));
        }
        let mut reply = Self::json(status, &body);
        reply.headers.extend(reply_headers);
        reply
    }
}

pub async fn handle(
    service: &Arc<BillingService>,
    route: Route,
    request: &HttpRequest,
    user_id: Option<&str>,
) -> HttpReply {
    if request.body_too_large {
        return HttpReply::error(413, "The request body is too large", "payload_too_large");
    }
    if route == Route::Webhook {
        return webhook(service, request).await;
    }
    let Some(user_id) = user_id.filter(|id| !id.is_empty()) else {
        return HttpReply::from_error(&BillingError::Unauthenticated);
    };
    // A cross-site form (or a bodiless fetch) cannot send JSON without a
    // CORS preflight: requiring it closes the cross-site request forgery path.
    if route.endpoint().method == "POST" && !is_json(request.header("content-type")) {
        return HttpReply::from_error(&BillingError::UnsupportedMediaType);
    }
    let result = match route {
        Route::Checkout => checkout(service, request, user_id).await,
        Route::Portal => portal(service, request, user_id).await,
        Route::Subscription => subscription(service, user_id).await,
        Route::Status => status(service, user_id).await,
        Route::ChangePlan => change_plan(service, request, user_id).await,
        Route::Cancel => cancel(service, request, user_id).await,
        Route::Resume => resume(service, request, user_id).await,
        Route::Sync => sync(service, request, user_id).await,
        Route::Invoices => invoices(service, request, user_id).await,
        Route::Webhook => unreachable!("handled above"),
    };
    result.unwrap_or_else(|error| HttpReply::from_error(&error))
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn request_origin(request: &HttpRequest) -> Result<String, BillingError> {
    parse_http_url(&request.url)
        .map(|url| origin_of(&url))
        .ok_or_else(|| BillingError::Internal("the request URL is not absolute".into()))
}

/// A redirect URL from a browser: absolute http(s), on the request's own
/// origin or a trusted one.
fn checked_redirect(
    service: &BillingService,
    name: &str,
    url: &str,
    own_origin: &str,
) -> Result<String, BillingError> {
    let parsed = parse_http_url(url)
        .ok_or_else(|| BillingError::invalid_argument(name, "must be an absolute http(s) URL"))?;
    let origin = origin_of(&parsed);
    if origin != own_origin && !service.config().trusted_origins.contains(&origin) {
        return Err(BillingError::invalid_argument(
            name,
            "must be on this site's origin or one listed in `trustedOrigins`",
        ));
    }
    Ok(url.to_owned())
}

async fn checkout(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let mut body = BodyFields::new(parse_json_object(&request.body)?);
    let choice = client_price_choice(service, &mut body)?;
    let success_url = body.optional_string("successUrl")?;
    let cancel_url = body.optional_string("cancelUrl")?;
    let trial_days = body.optional_integer("trialDays")?;
    let metadata = body.optional_object("metadata")?;
    body.reject_unknown()?;

    let config = service.config();
    let trial_days =
        match trial_days {
            None => None,
            // With plans the trial is the plan's; a client cannot ask for another.
            Some(_) if !config.plans.is_empty() => return Err(BillingError::invalid_argument(
                "trialDays",
                "is not accepted from clients when plans are configured; the plan sets the trial",
            )),
            Some(days) if days >= 1 && days <= i64::from(config.max_client_trial_days) => {
                Some(days as u32)
            }
            Some(_) if config.max_client_trial_days == 0 => {
                return Err(BillingError::invalid_argument(
                    "trialDays",
                    "is not accepted from clients",
                ))
            }
            Some(_) => {
                return Err(BillingError::invalid_argument(
                    "trialDays",
                    format!("must be from 1 to {}", config.max_client_trial_days),
                ))
            }
        };
    let metadata = client_metadata(service, metadata)?;
    let origin = request_origin(request)?;
    let success_url = match success_url {
        Some(url) => checked_redirect(service, "successUrl", &url, &origin)?,
        None => format!("{origin}{DEFAULT_SUCCESS_PATH}"),
    };
    let cancel_url = match cancel_url {
        Some(url) => checked_redirect(service, "cancelUrl", &url, &origin)?,
        None => format!("{origin}{DEFAULT_CANCEL_PATH}"),
    };
    let options = CheckoutOptions {
        success_url: Some(success_url),
        cancel_url: Some(cancel_url),
        trial_days,
        metadata,
    };
    let session = service
        .create_checkout_session(user_id, &choice, &options)
        .await?;
    Ok(HttpReply::json(
        200,
        &json!({
            "url": session.url,
            "sessionId": session.session_id,
            "trialGranted": session.trial_granted,
        }),
    ))
}

fn client_metadata(
    service: &BillingService,
    metadata: Option<Map<String, Value>>,
) -> Result<Vec<(String, String)>, BillingError> {
    let Some(metadata) = metadata else {
        return Ok(Vec::new());
    };
    let allowed = &service.config().client_metadata_keys;
    if metadata.len() > STRIPE_METADATA_MAX_KEYS {
        return Err(BillingError::invalid_argument(
            "metadata",
            "has more than 50 keys",
        ));
    }
    metadata
        .into_iter()
        .map(|(key, value)| {
            if !allowed.contains(&key) {
                return Err(BillingError::invalid_argument(
                    format!("metadata.{}", truncate(&key, STRIPE_METADATA_MAX_KEY_CHARS)),
                    "is not a key listed in `clientMetadataKeys`",
                ));
            }
            match value {
                Value::String(text) if text.chars().count() <= STRIPE_METADATA_MAX_VALUE_CHARS => {
                    Ok((key, text))
                }
                Value::String(_) => Err(BillingError::invalid_argument(
                    format!("metadata.{key}"),
                    "is longer than 500 characters",
                )),
                _ => Err(BillingError::invalid_argument(
                    format!("metadata.{key}"),
                    "must be a string",
                )),
            }
        })
        .collect()
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

async fn portal(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let mut body = BodyFields::new(parse_json_object(&request.body)?);
    let return_url = body.required_string("returnUrl")?;
    body.reject_unknown()?;
    let origin = request_origin(request)?;
    let return_url = checked_redirect(service, "returnUrl", &return_url, &origin)?;
    let url = service.create_portal_session(user_id, &return_url).await?;
    Ok(HttpReply::json(200, &json!({ "url": url })))
}

/// A subscription view as JSON (dates as ISO 8601).
fn subscription_json(s: &SubscriptionView) -> Value {
    json!({
        "id": s.id,
        "status": s.status,
        "priceId": s.price_id,
        "currentPeriodEnd": s.current_period_end.map(iso_8601),
        "cancelAtPeriodEnd": s.cancel_at_period_end,
        "plan": s.plan,
        "paymentIssue": s.payment_issue.as_ref().map(issue_json),
    })
}

async fn subscription(service: &BillingService, user_id: &str) -> Result<HttpReply, BillingError> {
    let subscription = service.get_subscription(user_id).await?;
    Ok(HttpReply::json(
        200,
        &json!({ "subscription": subscription.as_ref().map(subscription_json) }),
    ))
}

/// The price a client names (`priceId`, or `plan` and `annual`), under the
/// checkout allowlists.
fn client_price_choice(
    service: &BillingService,
    body: &mut BodyFields,
) -> Result<PriceChoice, BillingError> {
    let price_id = body.optional_string("priceId")?;
    let plan = body.optional_string("plan")?;
    let annual = body.optional_bool("annual")?;
    let config = service.config();
    match (price_id, plan) {
        (Some(_), Some(_)) => Err(BillingError::invalid_argument(
            "plan",
            "cannot be combined with priceId; send one of them",
        )),
        (None, None) if config.plans.is_empty() => {
            Err(BillingError::invalid_argument("priceId", "is required"))
        }
        (None, None) => Err(BillingError::invalid_argument(
            "plan",
            "is required (or a priceId of one of the plans)",
        )),
        (Some(_), None) if annual.is_some() => Err(BillingError::invalid_argument(
            "annual",
            "goes with `plan`; a priceId already says which price",
        )),
        (Some(price_id), None) => {
            if price_id.is_empty() {
                return Err(BillingError::invalid_argument(
                    "priceId",
                    "must not be empty",
                ));
            }
            if let Some(prices) = &config.prices {
                if !prices.contains(&price_id) {
                    return Err(BillingError::invalid_argument(
                        "priceId",
                        "is not one of the prices this app sells",
                    ));
                }
            }
            Ok(PriceChoice::Price(price_id))
        }
        (None, Some(name)) => Ok(PriceChoice::Plan {
            name,
            annual: annual.unwrap_or(false),
        }),
    }
}

async fn change_plan(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let mut body = BodyFields::new(parse_json_object(&request.body)?);
    let price = client_price_choice(service, &mut body)?;
    let quantity = body.optional_integer("quantity")?;
    let preview = body.optional_bool("preview")?.unwrap_or(false);
    body.reject_unknown()?;
    let quantity = match (quantity, service.config().client_quantity_max) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(BillingError::invalid_argument(
                "quantity",
                "is not accepted from clients (option `clientQuantity`)",
            ))
        }
        (Some(q), Some(max)) if q >= 1 && q <= i64::from(max) => Some(q as u32),
        (Some(_), Some(max)) => {
            return Err(BillingError::invalid_argument(
                "quantity",
                format!("must be from 1 to {max}"),
            ))
        }
    };
    let change = PlanChange {
        price,
        quantity,
        proration_behavior: None,
        proration_date: None,
        subscription_id: None,
    };
    if preview {
        let preview = service.preview_plan_change(user_id, &change).await?;
        return Ok(HttpReply::json(200, &json!(preview)));
    }
    let result = service.change_plan(user_id, &change).await?;
    Ok(HttpReply::json(
        200,
        &json!({
            "subscription": subscription_json(&result.subscription),
            "pending": result.pending.map(|p| json!({
                "invoiceId": p.invoice_id,
                "hostedInvoiceUrl": p.hosted_invoice_url,
                "expiresAt": p.expires_at.map(iso_8601),
            })),
        }),
    ))
}

async fn cancel(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let mut body = BodyFields::new(parse_json_object(&request.body)?);
    let immediately = body.optional_bool("immediately")?.unwrap_or(false);
    body.reject_unknown()?;
    if immediately && !service.config().client_cancel_immediately {
        return Err(BillingError::invalid_argument(
            "immediately",
            "is not accepted from clients (option `clientCancelImmediately`); cancellation is at period end",
        ));
    }
    let view = service
        .cancel_subscription(user_id, immediately, None)
        .await?;
    Ok(HttpReply::json(
        200,
        &json!({ "subscription": subscription_json(&view) }),
    ))
}

async fn resume(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let body = BodyFields::new(parse_json_object(&request.body)?);
    body.reject_unknown()?;
    let view = service.resume_subscription(user_id, None).await?;
    Ok(HttpReply::json(
        200,
        &json!({ "subscription": subscription_json(&view) }),
    ))
}

async fn sync(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let mut body = BodyFields::new(parse_json_object(&request.body)?);
    let session_id = body.optional_string("sessionId")?;
    body.reject_unknown()?;
    if service.config().standalone {
        service.take_sync_slot(user_id)?;
    }
    let view = service
        .sync_subscription(user_id, session_id.as_deref())
        .await?;
    Ok(HttpReply::json(
        200,
        &json!({ "subscription": view.as_ref().map(subscription_json) }),
    ))
}

/// `GET /auth/stripe/invoices?limit=&startingAfter=`.
async fn invoices(
    service: &BillingService,
    request: &HttpRequest,
    user_id: &str,
) -> Result<HttpReply, BillingError> {
    let url = parse_http_url(&request.url)
        .ok_or_else(|| BillingError::Internal("the request URL is not absolute".into()))?;
    let mut limit = None;
    let mut starting_after = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "limit" => {
                limit = Some(value.parse::<u32>().map_err(|_| {
                    BillingError::invalid_argument("limit", "must be a whole number from 1 to 100")
                })?)
            }
            "startingAfter" => starting_after = Some(value.into_owned()),
            other => {
                return Err(BillingError::invalid_argument(
                    other.chars().take(64).collect::<String>(),
                    "is not a known query parameter (limit, startingAfter)",
                ))
            }
        }
    }
    // Refused before the rate limit counts the call.
    if limit.is_some_and(|l| !(1..=MAX_INVOICE_PAGE).contains(&l)) {
        return Err(BillingError::invalid_argument(
            "limit",
            format!("must be from 1 to {MAX_INVOICE_PAGE}"),
        ));
    }
    if starting_after
        .as_deref()
        .is_some_and(|id| !is_stripe_id(id))
    {
        return Err(BillingError::invalid_argument(
            "startingAfter",
            "must be an invoice id",
        ));
    }
    if service.config().standalone {
        service.take_invoices_slot(user_id)?;
    }
    let page = service
        .list_invoices(user_id, limit, starting_after.as_deref())
        .await?;
    let invoices: Vec<Value> = page
        .invoices
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "number": i.number,
                "status": i.status,
                "amountDue": i.amount_due,
                "amountPaid": i.amount_paid,
                "currency": i.currency,
                "created": iso_8601(i.created),
                "periodStart": i.period_start.map(iso_8601),
                "periodEnd": i.period_end.map(iso_8601),
                "hostedInvoiceUrl": i.hosted_invoice_url,
                "invoicePdf": i.invoice_pdf,
            })
        })
        .collect();
    Ok(HttpReply::json(
        200,
        &json!({ "invoices": invoices, "hasMore": page.has_more }),
    ))
}

/// `GET /auth/stripe/status`: `getBillingStatus` as JSON (dates as ISO 8601,
/// as `JSON.stringify` writes the `Date`s of the server-side call).
async fn status(service: &BillingService, user_id: &str) -> Result<HttpReply, BillingError> {
    let status = service.billing_status(user_id).await?;
    Ok(HttpReply::json(200, &status_json(&status)))
}

pub fn status_json(status: &BillingStatus) -> Value {
    json!({
        "active": status.active,
        "status": status.status,
        "plan": status.plan,
        "priceId": status.price_id,
        "productId": status.product_id,
        "quantity": status.quantity,
        "currentPeriodEnd": status.current_period_end.map(iso_8601),
        "onTrial": status.on_trial,
        "trialEndsAt": status.trial_ends_at.map(iso_8601),
        "scheduledToCancel": status.scheduled_to_cancel,
        "endsAt": status.ends_at.map(iso_8601),
        "onGracePeriod": status.on_grace_period,
        "pastDue": status.past_due,
        "paymentIssue": status.payment_issue.as_ref().map(issue_json),
    })
}

/// A payment issue as JSON (its next attempt as ISO 8601).
fn issue_json(issue: &PaymentIssue) -> Value {
    json!({
        "invoiceId": issue.invoice_id,
        "reason": issue.reason,
        "amountDue": issue.amount_due,
        "currency": issue.currency,
        "attemptCount": issue.attempt_count,
        "nextPaymentAttempt": issue.next_payment_attempt.map(iso_8601),
        "hostedInvoiceUrl": issue.hosted_invoice_url,
    })
}

/// Unix seconds as JavaScript's `Date.prototype.toISOString` writes them.
pub fn iso_8601(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The webhook route through `http::handle` (the native binding has a
/// direct entry, `receive_webhook`): the same path, awaited.
async fn webhook(service: &Arc<BillingService>, request: &HttpRequest) -> HttpReply {
    let (sender, answer) = tokio::sync::oneshot::channel();
    receive_webhook(
        service,
        WebhookBody::Bytes(&request.body),
        request.header("stripe-signature"),
        WebhookResponder::new(move |reply| {
            let _ = sender.send(reply);
        }),
    );
    answer.await.unwrap_or_else(|_| HttpReply::internal_error())
}
