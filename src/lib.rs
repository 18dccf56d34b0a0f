//! kavachos-stripe: Stripe subscriptions for kavachOS. The core (config, store,
//! Stripe client, billing service, HTTP endpoints) is plain Rust; `binding`
//! is the thin `#[napi]` layer that converts types for Node.

pub mod billing;
pub mod binding;
pub mod cli_binding;
pub mod config;
pub mod emulator_binding;
pub mod emulator_options;
pub mod error;
pub mod events;
pub mod http;
pub mod ops;
pub mod option_value;
pub mod origin;
pub mod store;
pub mod stripe;
pub mod webhook;
