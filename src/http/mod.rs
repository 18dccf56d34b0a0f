//! HTTP endpoints: routing per the kavachOS contract and the handlers.

mod body;
mod endpoints;
mod routes;
mod webhook;

pub use endpoints::{handle, iso_8601, HttpReply, HttpRequest};
pub use routes::{match_route, Endpoint, Route, ENDPOINTS, MAX_JSON_BODY_BYTES};
pub use webhook::{receive_webhook, WebhookBody, WebhookResponder};
