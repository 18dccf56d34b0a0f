//! The emulator's clock: wall time plus an offset, so one setting moves every
//! timestamp the emulator writes (objects, `event.created`, the `Date` header).
//! Webhook signatures always use wall time, as Stripe's do.

#[derive(Debug, Default, Clone)]
pub struct Clock {
    offset_seconds: i64,
}

pub fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Clock {
    pub fn now(&self) -> i64 {
        wall_now() + self.offset_seconds
    }

    /// Moves the clock forward (never back).
    pub fn advance(&mut self, seconds: i64) {
        self.offset_seconds += seconds.max(0);
    }

    /// Moves the clock forward to `at` (a time in the past changes nothing).
    pub fn advance_to(&mut self, at: i64) {
        let now = self.now();
        if at > now {
            self.offset_seconds += at - now;
        }
    }

    pub fn offset(&self) -> i64 {
        self.offset_seconds
    }

    pub fn with_offset(offset_seconds: i64) -> Self {
        Self {
            offset_seconds: offset_seconds.max(0),
        }
    }

    /// `Date` header text for the emulator's now (RFC 7231).
    pub fn http_date(&self) -> String {
        chrono::DateTime::from_timestamp(self.now(), 0)
            .unwrap_or_default()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }
}
