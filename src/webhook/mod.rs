//! Webhooks: signature verification and the event envelope.

mod event;
mod signature;

pub use event::{check_event, parse_event, EventEnvelope, EventError};
pub use signature::{
    compute_signature, parse_signature_header, verify_signature, SignatureError, SignatureHeader,
};
