//! Signs webhook deliveries exactly as Stripe does:
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`,
//! keyed with the `whsec_` secret string as given.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub fn signature_header(secret: &str, timestamp: i64, payload: &str) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, payload))
}

fn sign(secret: &str, timestamp: i64, payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stripes_fixed_vector() {
        assert_eq!(
            super::signature_header(
                "whsec_test_secret",
                1234567890,
                r#"{"id":"evt_test_webhook","object":"event"}"#
            ),
            "t=1234567890,v1=5e2bdf0110b0906e8d06c8c63fb219b297c872fdbd42f2d6b8c665c4c7a4d3ff"
        );
    }
}
