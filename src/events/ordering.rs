//! Whether an event may change a stored subscription. Decided per
//! subscription from its own row (`last_event_created`), never from the event
//! ledger, so pruning the ledger cannot break ordering.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Newer than anything applied (or nothing applied yet): apply it.
    Apply,
    /// Older than what is applied: it must not overwrite newer state.
    Stale,
    /// Same second as the newest applied event (Stripe's `created` has
    /// one-second resolution): only Stripe knows which is newer, so re-fetch.
    Tie,
}

/// `authoritative` marks a snapshot fetched from Stripe just now: it is the
/// truth whatever event brought it.
pub fn decide(
    last_event_created: Option<i64>,
    event_created: i64,
    authoritative: bool,
) -> Ordering {
    if authoritative {
        return Ordering::Apply;
    }
    match last_event_created {
        None => Ordering::Apply,
        Some(last) if event_created > last => Ordering::Apply,
        Some(last) if event_created == last => Ordering::Tie,
        Some(_) => Ordering::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide(None, 5, false), Ordering::Apply);
        assert_eq!(decide(Some(4), 5, false), Ordering::Apply);
        assert_eq!(decide(Some(5), 5, false), Ordering::Tie);
        assert_eq!(decide(Some(6), 5, false), Ordering::Stale);
        assert_eq!(decide(Some(6), 5, true), Ordering::Apply);
    }
}
