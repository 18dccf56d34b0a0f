//! The one error type of the core. Every variant has a stable lower-snake-case
//! `code` (the list in README.md) and an HTTP status; the binding maps it to a JS
//! `Error` once, at the boundary.

use thiserror::Error;

use crate::stripe::StripeApiError;

#[derive(Debug, Error)]
pub enum BillingError {
    /// An option given to `stripe()` / `createStripeBilling()` is unknown or invalid.
    /// The message names the field; it never carries a secret's value.
    #[error("invalid kavachos-stripe option `{}`: {reason}", echo(field))]
    InvalidConfig { field: String, reason: String },

    /// The database cannot be shared with the native side (sql.js, D1, `:memory:` from a host).
    #[error("{0}")]
    DatabaseUnsupported(String),

    #[error("database error: {0}")]
    Database(String),

    #[error("database migration failed: {0}")]
    Migration(String),

    #[error("this billing instance was closed; create a new one")]
    Closed,

    #[error("no user with id `{}` in kavach_users", echo(.0))]
    UserNotFound(String),

    #[error("the user has no Stripe customer yet; create one with createCustomer first")]
    NoCustomer,

    #[error("invalid argument `{}`: {reason}", echo(name))]
    InvalidArgument { name: String, reason: String },

    #[error("the user already has a live subscription; change plans with changePlan or in the billing portal")]
    SubscriptionActive,

    /// No subscription to act on: none projected, or the given id is not the user's.
    #[error("{0}")]
    NoSubscription(String),

    #[error("the subscription has ended; a new checkout starts a new one")]
    SubscriptionEnded,

    #[error(
        "the subscription is paused; resume its collection first (in the billing portal or Stripe)"
    )]
    SubscriptionPaused,

    /// A POST endpoint's body is not `application/json` (a cross-site form
    /// cannot send JSON without a CORS preflight).
    #[error("the request body must be application/json")]
    UnsupportedMediaType,

    #[error("too many requests for this user; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },

    #[error("no checkout session with that id was created for this user")]
    CheckoutSessionNotFound,

    #[error("another request is creating this user's Stripe customer; retry shortly")]
    CustomerCreationInProgress,

    #[error("Authentication required")]
    Unauthenticated,

    #[error("Invalid JSON body")]
    InvalidJson,

    #[error("{0}")]
    StripeApi(Box<StripeApiError>),

    #[error("Stripe could not be reached: {0}")]
    StripeUnreachable(String),

    /// A verified webhook body that is not a usable Stripe event.
    #[error("{0}")]
    PayloadInvalid(String),

    /// Another delivery of the same event is still being handled; Stripe retries.
    #[error("this event is being handled by another delivery; retry later")]
    EventInProgress,

    /// The app's `onSubscriptionChange` threw or rejected; Stripe retries.
    #[error("onSubscriptionChange failed: {0}")]
    ListenerFailed(String),

    /// The app's `onEvent` threw or rejected; Stripe retries (nothing is re-applied).
    #[error("onEvent failed: {0}")]
    EventListenerFailed(String),

    /// The app's `onTrialWillEnd` threw or rejected; Stripe retries.
    #[error("onTrialWillEnd failed: {0}")]
    TrialListenerFailed(String),

    #[error("internal error in kavachos-stripe: {0}")]
    Internal(String),
}

impl BillingError {
    pub fn invalid_config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid_argument(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The stable code exposed to JS as `error.code` and in JSON error bodies.
    pub fn code(&self) -> &str {
        match self {
            Self::InvalidConfig { .. } => "invalid_config",
            Self::DatabaseUnsupported(_) => "database_unsupported",
            Self::Database(_) => "database_error",
            Self::Migration(_) => "migration_failed",
            Self::Closed => "closed",
            Self::UserNotFound(_) => "user_not_found",
            Self::NoCustomer => "no_customer",
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::SubscriptionActive => "subscription_active",
            Self::NoSubscription(_) => "no_subscription",
            Self::SubscriptionEnded => "subscription_ended",
            Self::SubscriptionPaused => "subscription_paused",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::CheckoutSessionNotFound => "checkout_session_not_found",
            Self::CustomerCreationInProgress => "customer_creation_in_progress",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidJson => "invalid_json",
            Self::StripeApi(e) => e.code.as_deref().unwrap_or("stripe_api_error"),
            Self::StripeUnreachable(_) => "stripe_unreachable",
            Self::PayloadInvalid(_) => "payload_invalid",
            Self::EventInProgress => "event_in_progress",
            Self::ListenerFailed(_) => "subscription_listener_failed",
            Self::TrialListenerFailed(_) => "trial_listener_failed",
            Self::EventListenerFailed(_) => "event_listener_failed",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status an endpoint answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidArgument { .. } | Self::InvalidJson => 400,
            Self::Unauthenticated => 401,
            Self::UserNotFound(_) | Self::CheckoutSessionNotFound => 404,
            Self::NoCustomer
            | Self::SubscriptionActive
            | Self::CustomerCreationInProgress
            | Self::NoSubscription(_)
            | Self::SubscriptionEnded
            | Self::SubscriptionPaused => 409,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited { .. } => 429,
            Self::StripeApi(e) => e.endpoint_status(),
            Self::StripeUnreachable(_) => 502,
            Self::PayloadInvalid(_) => 400,
            Self::EventInProgress => 409,
            Self::ListenerFailed(_)
            | Self::TrialListenerFailed(_)
            | Self::EventListenerFailed(_) => 500,
            Self::InvalidConfig { .. }
            | Self::DatabaseUnsupported(_)
            | Self::Database(_)
            | Self::Migration(_)
            | Self::Closed
            | Self::Internal(_) => 500,
        }
    }
}

impl BillingError {
    /// The message as it may leave the package (a JS `Error`, a response
    /// body): with anything shaped like a Stripe key or webhook secret
    /// replaced by `[redacted]`.
    pub fn public_message(&self) -> String {
        redact_secrets(&self.to_string())
    }
}

/// How much of an input a message repeats.
pub const ECHO_MAX_CHARS: usize = 100;

/// An input as a message repeats it: its first `ECHO_MAX_CHARS` characters,
/// then `…` when there was more.
pub fn echo(input: &str) -> String {
    match input.char_indices().nth(ECHO_MAX_CHARS) {
        Some((end, _)) => format!("{}…", &input[..end]),
        None => input.to_owned(),
    }
}

const SECRET_PREFIXES: [&str; 7] = [
    "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_", "whsec_",
];

/// Replaces every token shaped like a Stripe key (`(sk|rk|pk)_(test|live)_…`)
/// or webhook secret (`whsec_…`), masked or not (letters, digits, `*`, `_`),
/// with `[redacted]`: Stripe's
/// own messages name masked keys, and a stand-in or proxy may echo a whole one.
pub fn redact_secrets(text: &str) -> String {
    // Stripe's keys are alphanumeric; `_` too, for stand-ins' keys.
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '*' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for prefix in SECRET_PREFIXES {
            if let Some(after) = rest.strip_prefix(prefix) {
                let token_len = after
                    .find(|c: char| !is_token_char(c))
                    .unwrap_or(after.len());
                if token_len > 0 {
                    out.push_str("[redacted]");
                    rest = &after[token_len..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

impl From<sqlx::Error> for BillingError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolClosed => Self::Closed,
            other => Self::Database(other.to_string()),
        }
    }
}

pub type BillingResult<T> = Result<T, BillingError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_wherever_they_stand() {
        assert_eq!(
            redact_secrets("Invalid API Key provided: sk_test_****1234"),
            "Invalid API Key provided: [redacted]"
        );
        assert_eq!(
            redact_secrets("keys rk_live_AbC9 and pk_test_x, secret whsec_abc*; sk_live_ alone"),
            "keys [redacted] and [redacted], secret [redacted]; sk_live_ alone"
        );
        assert_eq!(
            redact_secrets("ünïcødé sk_test_Zz9."),
            "ünïcødé [redacted]."
        );
        assert_eq!(redact_secrets("nothing here"), "nothing here");
    }

    #[test]
    fn echoes_are_bounded() {
        let long = "x".repeat(10_000);
        let message = BillingError::UserNotFound(long).to_string();
        assert!(message.contains(&format!("{}…", "x".repeat(100))));
        assert!(message.chars().count() < 160, "{}", message.len());
        assert_eq!(echo("short"), "short");
        assert_eq!(echo(&"é".repeat(101)), format!("{}…", "é".repeat(100)));
        assert_eq!(echo(&"é".repeat(100)), "é".repeat(100));
    }
}
