#![no_main]
//! Any bytes as a webhook body, and any JSON as a Stripe object: extraction never panics.
use kavachos_stripe::events::{invoice_subscription_id, CheckoutCompletion, SubscriptionSnapshot};
use kavachos_stripe::webhook::parse_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_event(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = SubscriptionSnapshot::from_json(&value);
        let _ = CheckoutCompletion::from_json(&value);
        let _ = invoice_subscription_id(&value);
    }
});
