//! The one error type of the core. Every variant has a stable lower-snake-case
//! `code` (the list in README.md) and an HTTP status; the binding maps it to a JS
//! `Error` once, at the boundary.

use thiserror::Error;

use crate::stripe::StripeApiError;

#[derive(Debug, Error)]
pub enum BillingError {
    /// An option given to `stripe()` / `createStripeBilling()` is unknown or invalid.
    /// The message names the field; it never carries a secret's value.
    #[error("invalid kavachos-stripe option `{field}`: {reason}")]
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

    #[error("no user with id `{0}` in kavach_users")]
    UserNotFound(String),

    #[error("the user has no Stripe customer yet; create one with createCustomer first")]
    NoCustomer,

    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: String, reason: String },

    #[error("the user already has a live subscription; change plans in the billing portal")]
    SubscriptionActive,

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
            Self::CustomerCreationInProgress => "customer_creation_in_progress",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidJson => "invalid_json",
            Self::StripeApi(e) => e.code.as_deref().unwrap_or("stripe_api_error"),
            Self::StripeUnreachable(_) => "stripe_unreachable",
            Self::PayloadInvalid(_) => "payload_invalid",
            Self::EventInProgress => "event_in_progress",
            Self::ListenerFailed(_) => "subscription_listener_failed",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status an endpoint answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidArgument { .. } | Self::InvalidJson => 400,
            Self::Unauthenticated => 401,
            Self::UserNotFound(_) => 404,
            Self::NoCustomer | Self::SubscriptionActive | Self::CustomerCreationInProgress => 409,
            Self::StripeApi(e) => e.endpoint_status(),
            Self::StripeUnreachable(_) => 502,
            Self::PayloadInvalid(_) => 400,
            Self::EventInProgress => 409,
            Self::ListenerFailed(_) => 500,
            Self::InvalidConfig { .. }
            | Self::DatabaseUnsupported(_)
            | Self::Database(_)
            | Self::Migration(_)
            | Self::Closed
            | Self::Internal(_) => 500,
        }
    }
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
