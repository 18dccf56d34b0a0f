//! Billing periods: a price's interval added to a timestamp, on the calendar.

use chrono::{DateTime, Months, Utc};
use serde_json::Value;

/// The end of a period that starts at `start` for a recurring price.
pub fn period_end(start: i64, recurring: &Value) -> i64 {
    let interval = recurring["interval"].as_str().unwrap_or("month");
    let count = recurring["interval_count"].as_i64().unwrap_or(1).max(1);
    let Some(from) = DateTime::<Utc>::from_timestamp(start, 0) else {
        return start;
    };
    let months = |n: i64| {
        from.checked_add_months(Months::new(u32::try_from(n).unwrap_or(u32::MAX)))
            .map_or(start, |d| d.timestamp())
    };
    match interval {
        "day" => start + 86_400 * count,
        "week" => start + 7 * 86_400 * count,
        "year" => months(12 * count),
        _ => months(count),
    }
}

/// Whether two prices bill on the same cycle (a change between them prorates
/// instead of restarting the period).
pub fn same_cycle(a: &Value, b: &Value) -> bool {
    let interval = |p: &Value| {
        (
            p["recurring"]["interval"].as_str().map(str::to_owned),
            p["recurring"]["interval_count"].as_i64().unwrap_or(1),
        )
    };
    interval(a) == interval(b)
}

/// The share of `[start, end)` left after `at`, for prorations.
pub fn remaining_fraction(start: i64, end: i64, at: i64) -> f64 {
    if end <= start {
        return 0.0;
    }
    let at = at.clamp(start, end);
    (end - at) as f64 / (end - start) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calendar_intervals() {
        // 2026-01-31 + 1 month = 2026-02-28 (chrono clamps to the month's end).
        let jan31 = 1_769_817_600;
        assert_eq!(
            period_end(jan31, &json!({"interval": "month"})),
            1_772_236_800
        );
        assert_eq!(
            period_end(0, &json!({"interval": "day", "interval_count": 3})),
            259_200
        );
        assert_eq!(period_end(0, &json!({"interval": "year"})), 31_536_000);
        assert!((remaining_fraction(0, 100, 25) - 0.75).abs() < 1e-9);
        assert_eq!(remaining_fraction(0, 100, 500), 0.0);
    }
}
