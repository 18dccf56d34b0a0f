//! `Stripe-Signature` verification: HMAC-SHA256 over `t.` + the raw body,
//! every `v1` value against every configured secret, compared in constant time.
//! Stricter than the official SDK where it is lax: `t` must be a plain integer
//! and may lie no further in the future than in the past.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("No stripe-signature header value was provided.")]
    Missing,
    #[error("Unable to extract timestamp and signatures from header: {0}")]
    Malformed(&'static str),
    #[error(
        "No signatures found matching the expected signature for payload. Are you passing the raw request body you received from Stripe? (A JSON body parser, re-serialisation or an added newline changes the bytes.){hint}"
    )]
    Mismatch { hint: &'static str },
    #[error("Timestamp outside the tolerance zone ({age}s from now, tolerance {tolerance}s)")]
    TimestampOutOfTolerance { age: i64, tolerance: u64 },
    #[error("No webhook signing secret is configured, so no webhook can be verified; set the `webhookSecret` option (whsec_...)")]
    SecretNotConfigured,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed(_) => "signature_malformed",
            Self::Mismatch { .. } => "signature_mismatch",
            Self::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            Self::SecretNotConfigured => "secret_not_configured",
        }
    }
}

/// The parts of a `Stripe-Signature` header this package uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// Each `v1` value, decoded; values that are not 64 hex digits never match.
    pub v1: Vec<Option<[u8; 32]>>,
}

/// Parses `t=...,v1=...[,v1=...][,v0=...][,other=...]`. Unknown keys are
/// ignored, `v0` is never used, and `t` must appear once as plain digits.
pub fn parse_signature_header(header: &str) -> Result<SignatureHeader, SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        // Stripe never puts spaces in the header; ", " is what an HTTP stack
        // makes of a Stripe-Signature header sent twice.
        if item.starts_with(char::is_whitespace) || item.ends_with(char::is_whitespace) {
            return Err(SignatureError::Malformed(
                "it has spaces, or the header was sent more than once",
            ));
        }
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed(
                        "the timestamp `t` appears more than once",
                    ));
                }
                if value.is_empty()
                    || value.len() > 12
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(SignatureError::Malformed(
                        "the timestamp `t` is not a plain integer",
                    ));
                }
                timestamp = value.parse::<i64>().ok();
            }
            "v1" => v1.push(decode_hex_32(value)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp `t`"))?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed(
            "No signatures found with expected scheme v1",
        ));
    }
    Ok(SignatureHeader { timestamp, v1 })
}

fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    // Stripe writes lowercase hex; like the official SDK, nothing else matches.
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// HMAC-SHA256 of `t.` + payload under `secret` (the `whsec_` string as is).
pub fn compute_signature(secret: &str, timestamp: i64, payload: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Verifies a webhook delivery. `now` is Unix seconds.
pub fn verify_signature<S: AsRef<str>>(
    payload: &[u8],
    header: &str,
    secrets: &[S],
    tolerance_secs: u64,
    now: i64,
) -> Result<SignatureHeader, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::SecretNotConfigured);
    }
    let parsed = parse_signature_header(header)?;
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = compute_signature(secret.as_ref(), parsed.timestamp, payload);
        for candidate in parsed.v1.iter().flatten() {
            matched |= expected.ct_eq(candidate);
        }
    }
    if !bool::from(matched) {
        let hint = if secrets.iter().any(|s| s.as_ref().trim() != s.as_ref()) {
            " The signing secret has whitespace around it; remove it."
        } else {
            ""
        };
        return Err(SignatureError::Mismatch { hint });
    }
    let age = now.saturating_sub(parsed.timestamp);
    if age.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::TimestampOutOfTolerance {
            age,
            tolerance: tolerance_secs,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::hex;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const VECTOR: &str = "5e2bdf0110b0906e8d06c8c63fb219b297c872fdbd42f2d6b8c665c4c7a4d3ff";

    #[test]
    fn reference_vector() {
        assert_eq!(hex(&compute_signature(SECRET, 1_234_567_890, BODY)), VECTOR);
        let header = format!("t=1234567890,v1={VECTOR}");
        assert!(verify_signature(BODY, &header, &[SECRET], 300, 1_234_567_890).is_ok());
    }

    #[test]
    fn any_v1_and_any_secret_verifies_and_v0_never_does() {
        let header = format!("t=1234567890,v1={},v1={VECTOR},v0={VECTOR}", "0".repeat(64));
        assert!(
            verify_signature(BODY, &header, &["whsec_old", SECRET], 300, 1_234_567_890).is_ok()
        );
        let v0_only = format!("t=1234567890,v0={VECTOR}");
        assert_eq!(
            verify_signature(BODY, &v0_only, &[SECRET], 300, 1_234_567_890)
                .unwrap_err()
                .code(),
            "signature_malformed"
        );
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        let header = format!("t=1234567890,v1={VECTOR}");
        assert!(verify_signature(BODY, &header, &[SECRET], 300, 1_234_567_890 + 300).is_ok());
        assert!(verify_signature(BODY, &header, &[SECRET], 300, 1_234_567_890 - 300).is_ok());
        for now in [1_234_567_890 + 301, 1_234_567_890 - 301] {
            assert_eq!(
                verify_signature(BODY, &header, &[SECRET], 300, now)
                    .unwrap_err()
                    .code(),
                "timestamp_out_of_tolerance"
            );
        }
    }

    #[test]
    fn uppercase_hex_never_matches() {
        let header = format!("t=1234567890,v1={}", VECTOR.to_uppercase());
        assert_eq!(
            verify_signature(BODY, &header, &[SECRET], 300, 1_234_567_890)
                .unwrap_err()
                .code(),
            "signature_mismatch"
        );
    }

    #[test]
    fn malformed_headers() {
        for header in [
            "t=12.5,v1=aa",
            "t=abc,v1=aa",
            "t=-5,v1=aa",
            "v1=aa",
            "t=1,t=2,v1=aa",
            "garbage",
        ] {
            assert_eq!(
                parse_signature_header(header).unwrap_err().code(),
                "signature_malformed",
                "{header}"
            );
        }
        assert_eq!(
            parse_signature_header("  ").unwrap_err().code(),
            "signature_missing"
        );
    }

    #[test]
    fn mismatch_and_hints() {
        let header = format!("t=1234567890,v1={VECTOR}");
        let err = verify_signature(b"{}", &header, &[SECRET], 300, 1_234_567_890).unwrap_err();
        assert_eq!(err.code(), "signature_mismatch");
        assert!(err.to_string().contains("raw request body"));
        let err = verify_signature(BODY, &header, &[" whsec_test_secret"], 300, 1_234_567_890)
            .unwrap_err();
        assert!(err.to_string().contains("whitespace"));
        let none: [&str; 0] = [];
        assert_eq!(
            verify_signature(BODY, &header, &none, 300, 0)
                .unwrap_err()
                .code(),
            "secret_not_configured"
        );
    }
}
