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
}

static INSTALL_CRYPTO: Once = Once::new();

/// The TLS stack is rustls on ring; the provider is process-wide.
fn install_crypto_provider() {
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
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(10_000)))
            .build()
            .map_err(|e| BillingError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            api_base: config.api_base.clone(),
        })
    }

    /// `GET /v1/...`.
    pub async fn get(&self, path: &str) -> BillingResult<Value> {
        let request = self.http.get(format!("{}{path}", self.api_base));
        Self::send(request).await
    }

    /// `POST /v1/...` with a form body and an idempotency key.
    pub async fn post(
        &self,
        path: &str,
        form: &FormBody,
        idempotency_key: &str,
    ) -> BillingResult<Value> {
        let request = self
            .http
            .post(format!("{}{path}", self.api_base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("Idempotency-Key", idempotency_key)
            .body(form.encode());
        Self::send(request).await
    }

    async fn send(request: reqwest::RequestBuilder) -> BillingResult<Value> {
        let response = request
            .send()
            .await
            .map_err(|e| BillingError::StripeUnreachable(describe_transport_error(&e)))?;
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("Request-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| BillingError::StripeUnreachable(describe_transport_error(&e)))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                BillingError::StripeUnreachable(format!(
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
        Err(BillingError::StripeApi(Box::new(StripeApiError {
            status_code: status,
            error_type: text("type").unwrap_or_else(|| "api_error".to_owned()),
            code: text("code"),
            decline_code: text("decline_code"),
            param: text("param"),
            message: text("message").unwrap_or_else(|| format!("Stripe answered HTTP {status}")),
            request_id,
            retry_after,
        })))
    }
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
