//! Object ids in Stripe's style (`cus_` + 24 characters) and secrets.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 32 unpredictable bytes: a fresh `RandomState` (seeded by the OS), the
/// time and a counter, hashed.
pub fn random_bytes() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut hasher = Sha256::new();
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_le_bytes(),
    );
    hasher.update(std::hash::BuildHasher::hash_one(&state, std::process::id()).to_le_bytes());
    hasher.finalize().into()
}

pub fn random_token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes() {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
        }
    }
    out
}

/// `new_id("cus")` -> `cus_Q1w2...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(24))
}

/// A uniform float in [0, 1), for chaos decisions.
pub fn random_unit() -> f64 {
    let bytes = random_bytes();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new_id("cus");
        let b = super::new_id("cus");
        assert!(a.starts_with("cus_") && a.len() == 28);
        assert_ne!(a, b);
        let unit = super::random_unit();
        assert!((0.0..1.0).contains(&unit));
    }
}
