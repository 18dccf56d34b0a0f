//! Talking to Stripe: the REST client, its form encoding and its errors.

mod client;
mod error;
mod form;

pub use client::{
    derived_idempotency_key, hex, install_crypto_provider, random_idempotency_key, StripeClient,
    StripeResponse,
};
pub use error::StripeApiError;
pub use form::FormBody;
