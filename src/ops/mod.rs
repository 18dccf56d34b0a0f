//! Operations a deploy pipeline runs from the command line
//! (`kavachos-stripe migrate`, `doctor`): pure Rust over the store and
//! Stripe's API; the CLI only prints what they return.

pub mod doctor;
pub mod migrate;
