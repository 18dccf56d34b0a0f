//! The Stripe REST client: one pooled `reqwest::Client` per billing instance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{FormBody, StripeApiError};
use crate::config::BillingConfig;
use crate::error::{BillingError, BillingResult};

const USER_AGENT: &str = concat!("kavachos-stripe/", env!("CARGO_PKG_VERSION"));

pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    max_network_retries: u32,
}

/// One attempt's failure, before the retry policy decides about it.
enum AttemptError {
    /// No complete answer: connection refused or dropped, or the per-attempt timeout.
    Transport(String),
    /// Stripe answered with an error status.
    Api {
        error: StripeApiError,
        should_retry: Option<bool>,
    },
}

impl AttemptError {
    /// The SDK's policy: `Stripe-Should-Retry` decides when present; otherwise
    /// transport failures, 409 and 5xx are retried, other 4xx (429 included) are not.
    fn retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api {
                should_retry: Some(flag),
                ..
            } => *flag,
            Self::Api { error, .. } => error.status_code == 409 || error.status_code >= 500,
        }
    }

    fn into_error(self) -> BillingError {
        match self {
            Self::Transport(reason) => BillingError::StripeUnreachable(reason),
            Self::Api { error, .. } => BillingError::StripeApi(Box::new(error)),
        }
    }
}

/// Backoff before retry `n` (1-based): min(0.5 s * 2^(n-1), 5 s) times a
/// random factor in [0.5, 1), and never less than 0.5 s.
pub fn retry_delay(n: u32, random_unit: f64) -> Duration {
    let base = (0.5 * 2f64.powi(n.saturating_sub(1).min(16) as i32)).min(5.0);
    Duration::from_secs_f64((base * (0.5 + random_unit.clamp(0.0, 1.0) / 2.0)).max(0.5))
}

/// A number in [0, 1) that differs between calls (jitter needs no more).
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::collections::hash_map::RandomState::new();
    let value = std::hash::BuildHasher::hash_one(&seed, COUNTER.fetch_add(1, Ordering::Relaxed));
    (value >> 11) as f64 / (1u64 << 53) as f64
}

static INSTALL_CRYPTO: Once = Once::new();

/// The TLS stack is rustls on ring; the provider is process-wide.
pub fn install_crypto_provider() {
    INSTALL_CRYPTO.call_once(|| {
        // Err means another library in the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl StripeClient {
    pub fn new(config: &BillingConfig) -> BillingResult<Self> {
        install_crypto_provider();
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.secret_key.expose()))
            .map_err(|_| {
                BillingError::invalid_config(
                    "secretKey",
                    "contains characters not allowed in a header",
                )
            })?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            "Stripe-Version",
            HeaderValue::from_str(&config.api_version).map_err(|_| {
                BillingError::invalid_config(
                    "apiVersion",
                    "contains characters not allowed in a header",
                )
            })?,
        );
        let http = reqwest::Client::builder()
            // Stripe's API never redirects: a 3xx is an answer, never a
            // reason to re-send the form (or the key) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(10_000)))
            .build()
            .map_err(|e| BillingError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            api_base: config.api_base.clone(),
            max_network_retries: config.max_network_retries,
        })
    }

    /// `GET /v1/...`.
    pub async fn get(&self, path: &str) -> BillingResult<Value> {
        Ok(self.get_dated(path).await?.body)
    }

    /// `GET /v1/...`, with the time Stripe answered.
    pub async fn get_dated(&self, path: &str) -> BillingResult<StripeResponse> {
        let url = format!("{}{path}", self.api_base);
        self.with_retries(|| self.http.get(&url)).await
    }

    /// `POST /v1/...` with a form body. The idempotency key is the same on
    /// every retry, so Stripe applies the request at most once.
    pub async fn post(
        &self,
        path: &str,
        form: &FormBody,
        idempotency_key: &str,
    ) -> BillingResult<Value> {
        Ok(self.post_dated(path, form, idempotency_key).await?.body)
    }

    /// `POST /v1/...`, with the time Stripe answered.
    pub async fn post_dated(
        &self,
        path: &str,
        form: &FormBody,
        idempotency_key: &str,
    ) -> BillingResult<StripeResponse> {
        let url = format!("{}{path}", self.api_base);
        let body = form.encode();
        self.with_retries(|| {
            self.http
                .post(&url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("Idempotency-Key", idempotency_key)
                .body(body.clone())
        })
        .await
    }

    /// `DELETE /v1/...` (cancelling a subscription), with the time Stripe answered.
    pub async fn delete_dated(
        &self,
        path: &str,
        idempotency_key: &str,
    ) -> BillingResult<StripeResponse> {
        let url = format!("{}{path}", self.api_base);
        self.with_retries(|| {
            self.http
                .delete(&url)
                .header("Idempotency-Key", idempotency_key)
        })
        .await
    }

    async fn with_retries(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> BillingResult<StripeResponse> {
        let mut retries = 0;
        loop {
            match Self::attempt(build()).await {
                Ok(value) => return Ok(value),
                Err(failure) if failure.retryable() && retries < self.max_network_retries => {
                    retries += 1;
                    tokio::time::sleep(retry_delay(retries, random_unit())).await;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }

    async fn attempt(request: reqwest::RequestBuilder) -> Result<StripeResponse, AttemptError> {
        let response = request
            .send()
            .await
            .map_err(|e| AttemptError::Transport(describe_transport_error(&e)))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("Request-Id");
        let date = header("Date").and_then(|value| http_date_seconds(&value));
        let retry_after = header("Retry-After").and_then(|v| v.trim().parse().ok());
        let should_retry = match header("Stripe-Should-Retry").as_deref() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let body = response
            .bytes()
            .await
            .map_err(|e| AttemptError::Transport(describe_transport_error(&e)))?;
        if (300..400).contains(&status) {
            // Whatever the redirect's body or headers claim, it is an API
            // error that is not retried.
            return Err(AttemptError::Api {
                error: StripeApiError {
                    status_code: status,
                    error_type: "api_error".to_owned(),
                    code: None,
                    decline_code: None,
                    param: None,
                    message: format!(
                        "the Stripe API answered with a redirect (HTTP {status}), which Stripe never does; it was not followed"
                    ),
                    request_id,
                    retry_after: None,
                },
                should_retry: Some(false),
            });
        }
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&status) {
            return json
                .map(|body| StripeResponse { body, date })
                .ok_or_else(|| {
                    AttemptError::Transport(format!(
                        "Stripe answered {status} with a body that is not JSON"
                    ))
                });
        }
        let error = json.as_ref().and_then(|v| v.get("error"));
        let text = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Err(AttemptError::Api {
            error: StripeApiError {
                status_code: status,
                error_type: text("type").unwrap_or_else(|| "api_error".to_owned()),
                code: text("code"),
                decline_code: text("decline_code"),
                param: text("param"),
                message: text("message")
                    .unwrap_or_else(|| format!("Stripe answered HTTP {status}")),
                request_id,
                retry_after,
            },
            should_retry,
        })
    }
}

/// A successful answer and the time Stripe gave it (its `Date` header, in
/// Unix seconds): the as-of time of the objects in it, on Stripe's clock.
#[derive(Debug, Clone)]
pub struct StripeResponse {
    pub body: Value,
    pub date: Option<i64>,
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) in Unix seconds.
pub fn http_date_seconds(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|date| date.timestamp())
}

/// A transport failure, described without the URL's query or any header.
fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "the connection failed".to_owned()
    } else {
        "the connection broke before a complete answer".to_owned()
    }
}

/// A fresh idempotency key: unique per call, stable across that call's retries.
pub fn random_idempotency_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::collections::hash_map::RandomState::new();
    let mut hasher = Sha256::new();
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_le_bytes(),
    );
    hasher.update(std::hash::BuildHasher::hash_one(&seed, std::process::id()).to_le_bytes());
    format!("kavach-{}", hex(&hasher.finalize()[..16]))
}

/// An idempotency key derived from what the request means, so concurrent
/// identical requests collapse into one at Stripe.
pub fn derived_idempotency_key(scope: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    format!("kavach-{scope}-{}", hex(&hasher.finalize()[..16]))
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0x0f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_sdk_policy() {
        assert_eq!(retry_delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(
            retry_delay(1, 0.999_999),
            Duration::from_secs_f64(0.5f64.max(0.5 * (0.5 + 0.999_999 / 2.0)))
        );
        assert_eq!(retry_delay(2, 0.0), Duration::from_millis(500));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(2));
        assert_eq!(
            retry_delay(10, 1.0),
            Duration::from_secs(5),
            "capped at 5 s"
        );
        assert!(retry_delay(4, 0.0) >= Duration::from_secs(2));
        let unit = random_unit();
        assert!((0.0..1.0).contains(&unit));
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date_seconds("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date_seconds("yesterday"), None);
    }

    #[test]
    fn keys() {
        assert_ne!(random_idempotency_key(), random_idempotency_key());
        assert_eq!(
            derived_idempotency_key("customer", &["u1", "a@b.c"]),
            derived_idempotency_key("customer", &["u1", "a@b.c"])
        );
        assert_ne!(
            derived_idempotency_key("customer", &["u1", "a@b.c"]),
            derived_idempotency_key("customer", &["u1a", "@b.c"])
        );
    }
}
