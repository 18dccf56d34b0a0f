//! The webhook endpoint: verify the signature, then hand the payload to the
//! billing service. The answer comes back through a `WebhookResponder`, after
//! the commit that holds the event, so the caller does not hold a task (or a
//! JS promise's worth of native state) per delivery while the writer batches.

use std::sync::Arc;

use super::endpoints::HttpReply;
use crate::billing::BillingService;
use crate::webhook::{verify_signature, SignatureError};

/// Payloads up to this size are verified on the caller's thread (a few
/// microseconds); larger ones on a task, so a big body never holds the JS
/// event loop.
pub const INLINE_PAYLOAD_BYTES: usize = 64 * 1024;

/// A webhook request's body, as the route read it.
pub enum WebhookBody<'a> {
    Bytes(&'a [u8]),
    /// Longer than `maxWebhookBytes`: not read whole.
    TooLarge,
}

/// Delivers the one answer a webhook gets. Dropped unanswered (a panic on the
/// way), it answers 500 itself, so no delivery is ever left hanging.
pub struct WebhookResponder(Option<Box<dyn FnOnce(HttpReply) + Send>>);

impl WebhookResponder {
    pub fn new(send: impl FnOnce(HttpReply) + Send + 'static) -> Self {
        Self(Some(Box::new(send)))
    }

    pub fn send(mut self, reply: HttpReply) {
        if let Some(send) = self.0.take() {
            send(reply);
        }
    }
}

impl Drop for WebhookResponder {
    fn drop(&mut self) {
        if let Some(send) = self.0.take() {
            send(HttpReply::internal_error());
        }
    }
}

pub fn receive_webhook(
    service: &Arc<BillingService>,
    body: WebhookBody<'_>,
    signature: Option<&str>,
    responder: WebhookResponder,
) {
    let payload = match body {
        WebhookBody::TooLarge => {
            return responder.send(HttpReply::error(
                413,
                "The request body is too large",
                "payload_too_large",
            ))
        }
        WebhookBody::Bytes(payload) => payload,
    };
    if payload.len() <= INLINE_PAYLOAD_BYTES {
        return receive_verified(service, payload, signature.unwrap_or(""), responder);
    }
    let service = Arc::clone(service);
    let payload = payload.to_vec();
    let signature = signature.unwrap_or("").to_owned();
    let runtime = service.runtime().clone();
    runtime.spawn(async move { receive_verified(&service, &payload, &signature, responder) });
}

fn signature_reply(error: &SignatureError) -> HttpReply {
    HttpReply::error(400, &error.to_string(), error.code())
}

fn receive_verified(
    service: &Arc<BillingService>,
    payload: &[u8],
    signature: &str,
    responder: WebhookResponder,
) {
    let config = service.config();
    if config.webhook_secrets.is_empty() {
        return responder.send(signature_reply(&SignatureError::SecretNotConfigured));
    }
    let secrets: Vec<&str> = config.webhook_secrets.iter().map(|s| s.expose()).collect();
    if let Err(error) = verify_signature(
        payload,
        signature,
        &secrets,
        config.webhook_tolerance_secs,
        chrono::Utc::now().timestamp(),
    ) {
        return responder.send(signature_reply(&error));
    }
    service.receive_event(
        payload,
        Box::new(move |result| {
            responder.send(match result {
                Ok(body) => HttpReply::json(200, &body),
                Err(error) => HttpReply::from_error(&error),
            })
        }),
    );
}
