//! A failure Stripe answered with, as the JS `StripeApiError` carries it.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StripeApiError {
    pub status_code: u16,
    /// Stripe's error type: `invalid_request_error`, `card_error`, `api_error`, ...
    #[serde(rename = "type")]
    pub error_type: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub param: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    /// Seconds from a 429's `Retry-After`, passed on to our own 503.
    pub retry_after: Option<u64>,
}

impl StripeApiError {
    /// The status our endpoints answer with: the client's fault stays a 4xx;
    /// our own credentials failing is our fault (500); Stripe's limits or
    /// outages, and anything that is not Stripe's answer (a redirect), are a
    /// 503/502.
    pub fn endpoint_status(&self) -> u16 {
        match self.status_code {
            400 | 402 | 404 => self.status_code,
            401 | 403 => 500,
            429 => 503,
            300..=399 | 500.. => 502,
            _ => 400,
        }
    }
}

impl fmt::Display for StripeApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status_code {
            401 => f.write_str(
                "Stripe rejected the configured secretKey (401): check the `secretKey` option",
            ),
            403 => write!(
                f,
                "the configured secretKey lacks a permission for this request (403): {}",
                self.message
            ),
            _ => f.write_str(&self.message),
        }
    }
}
