//! `startStripeEmulator(options)`: the JS options read into the emulator's
//! configuration. Unknown keys and wrong types are refused by name, so a typo
//! (`chaos: { duplicate: 0.5 }`) never silently turns a feature off.

use kavachos_stripe_emulator::{
    BillingSettings, CatalogPrice, CatalogProduct, Chaos, EmulatorConfig, RetriesEnd, RetryPolicy,
    WebhookTarget,
};

use crate::error::BillingError;
use crate::option_value::OptionValue;

type Entries<'a> = &'a [(String, OptionValue)];

fn object<'a>(field: &str, value: &'a OptionValue) -> Result<Entries<'a>, BillingError> {
    match value {
        OptionValue::Object(entries) => Ok(entries),
        other => Err(wrong(field, "an object", other)),
    }
}

fn wrong(field: &str, expected: &str, got: &OptionValue) -> BillingError {
    BillingError::invalid_config(field, format!("must be {expected}, got {}", got.kind()))
}

/// Refuses keys outside `known`.
fn only(field: &str, entries: Entries<'_>, known: &[&str]) -> Result<(), BillingError> {
    match entries
        .iter()
        .find(|(k, v)| !known.contains(&k.as_str()) && !v.is_absent())
    {
        Some((key, _)) => Err(BillingError::invalid_config(
            if field.is_empty() {
                key.clone()
            } else {
                format!("{field}.{key}")
            },
            format!("is not an option (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn get<'a>(entries: Entries<'a>, key: &str) -> &'a OptionValue {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map_or(&OptionValue::Undefined, |(_, v)| v)
}

fn string(field: &str, value: &OptionValue) -> Result<Option<String>, BillingError> {
    match value {
        OptionValue::Undefined | OptionValue::Null => Ok(None),
        OptionValue::String(text) => Ok(Some(text.clone())),
        other => Err(wrong(field, "a string", other)),
    }
}

fn number(field: &str, value: &OptionValue) -> Result<Option<f64>, BillingError> {
    match value {
        OptionValue::Undefined | OptionValue::Null => Ok(None),
        OptionValue::Number(n) if n.is_finite() => Ok(Some(*n)),
        other => Err(wrong(field, "a finite number", other)),
    }
}

fn whole(
    field: &str,
    value: &OptionValue,
    min: f64,
    max: f64,
) -> Result<Option<u64>, BillingError> {
    match number(field, value)? {
        None => Ok(None),
        Some(n) if n.fract() == 0.0 && (min..=max).contains(&n) => Ok(Some(n as u64)),
        Some(_) => Err(BillingError::invalid_config(
            field,
            format!("must be a whole number from {min} to {max}"),
        )),
    }
}

fn array<'a>(field: &str, value: &'a OptionValue) -> Result<&'a [OptionValue], BillingError> {
    match value {
        OptionValue::Undefined | OptionValue::Null => Ok(&[]),
        OptionValue::Array(items) => Ok(items),
        other => Err(wrong(field, "an array", other)),
    }
}

fn webhook(field: &str, value: &OptionValue) -> Result<WebhookTarget, BillingError> {
    let entries = object(field, value)?;
    only(field, entries, &["url", "events", "apiVersion"])?;
    let url = string(&format!("{field}.url"), get(entries, "url"))?
        .ok_or_else(|| BillingError::invalid_config(format!("{field}.url"), "is required"))?;
    let mut events = Vec::new();
    for (i, event) in array(&format!("{field}.events"), get(entries, "events"))?
        .iter()
        .enumerate()
    {
        let name = format!("{field}.events[{i}]");
        events.push(string(&name, event)?.ok_or_else(|| wrong(&name, "a string", event))?);
    }
    if get(entries, "events").is_absent() {
        events.push("*".to_owned());
    }
    Ok(WebhookTarget {
        url,
        events,
        api_version: string(&format!("{field}.apiVersion"), get(entries, "apiVersion"))?,
    })
}

fn price(field: &str, value: &OptionValue) -> Result<CatalogPrice, BillingError> {
    let entries = object(field, value)?;
    only(
        field,
        entries,
        &[
            "id",
            "lookupKey",
            "nickname",
            "unitAmount",
            "currency",
            "interval",
            "intervalCount",
        ],
    )?;
    let at = |key: &str| format!("{field}.{key}");
    Ok(CatalogPrice {
        id: string(&at("id"), get(entries, "id"))?,
        lookup_key: string(&at("lookupKey"), get(entries, "lookupKey"))?,
        nickname: string(&at("nickname"), get(entries, "nickname"))?,
        unit_amount: whole(
            &at("unitAmount"),
            get(entries, "unitAmount"),
            0.0,
            99_999_999.0,
        )?
        .ok_or_else(|| BillingError::invalid_config(at("unitAmount"), "is required"))?
            as i64,
        currency: string(&at("currency"), get(entries, "currency"))?
            .unwrap_or_else(|| "usd".into()),
        // A catalog is for subscriptions: monthly unless it says otherwise;
        // `interval: null` makes a one-time price.
        interval: match get(entries, "interval") {
            OptionValue::Undefined => Some("month".to_owned()),
            value => string(&at("interval"), value)?,
        },
        interval_count: whole(
            &at("intervalCount"),
            get(entries, "intervalCount"),
            1.0,
            365.0,
        )?
        .unwrap_or(1) as i64,
    })
}

fn product(field: &str, value: &OptionValue) -> Result<CatalogProduct, BillingError> {
    let entries = object(field, value)?;
    only(field, entries, &["id", "name", "prices"])?;
    let mut prices = Vec::new();
    for (i, p) in array(&format!("{field}.prices"), get(entries, "prices"))?
        .iter()
        .enumerate()
    {
        prices.push(price(&format!("{field}.prices[{i}]"), p)?);
    }
    Ok(CatalogProduct {
        id: string(&format!("{field}.id"), get(entries, "id"))?,
        name: string(&format!("{field}.name"), get(entries, "name"))?
            .ok_or_else(|| BillingError::invalid_config(format!("{field}.name"), "is required"))?,
        prices,
    })
}

/// `billingMode` and `dunning`.
fn billing_settings(entries: Entries<'_>) -> Result<BillingSettings, BillingError> {
    let mut billing = BillingSettings::default();
    if let Some(mode) = string("billingMode", get(entries, "billingMode"))? {
        billing.billing_mode = mode;
    }
    if get(entries, "dunning").is_absent() {
        return Ok(billing);
    }
    let dunning = object("dunning", get(entries, "dunning"))?;
    only("dunning", dunning, &["retryDays", "whenRetriesEnd"])?;
    if !get(dunning, "retryDays").is_absent() {
        let mut days = Vec::new();
        for (i, day) in array("dunning.retryDays", get(dunning, "retryDays"))?
            .iter()
            .enumerate()
        {
            let name = format!("dunning.retryDays[{i}]");
            let value =
                whole(&name, day, 1.0, 60.0)?.ok_or_else(|| wrong(&name, "a number", day))?;
            days.push(value as i64);
        }
        billing.retry_days = days;
    }
    billing.when_retries_end =
        match string("dunning.whenRetriesEnd", get(dunning, "whenRetriesEnd"))?.as_deref() {
            None | Some("cancel") => RetriesEnd::Cancel,
            Some("unpaid") => RetriesEnd::Unpaid,
            Some("past_due") => RetriesEnd::PastDue,
            Some(_) => {
                return Err(BillingError::invalid_config(
                    "dunning.whenRetriesEnd",
                    "must be \"cancel\", \"unpaid\" or \"past_due\"",
                ))
            }
        };
    Ok(billing)
}

pub fn emulator_config(value: &OptionValue) -> Result<EmulatorConfig, BillingError> {
    let mut config = EmulatorConfig::default();
    let entries = match value {
        OptionValue::Undefined | OptionValue::Null => return Ok(config),
        other => object("options", other)?,
    };
    only(
        "",
        entries,
        &[
            "port",
            "webhooks",
            "catalog",
            "chaos",
            "apiVersion",
            "webhookRetry",
            "state",
            "billingMode",
            "dunning",
        ],
    )?;
    if let Some(port) = whole("port", get(entries, "port"), 0.0, 65_535.0)? {
        config.port = port as u16;
    }
    for (i, target) in array("webhooks", get(entries, "webhooks"))?
        .iter()
        .enumerate()
    {
        config
            .webhooks
            .push(webhook(&format!("webhooks[{i}]"), target)?);
    }
    if !get(entries, "catalog").is_absent() {
        let mut catalog = Vec::new();
        for (i, p) in array("catalog", get(entries, "catalog"))?
            .iter()
            .enumerate()
        {
            catalog.push(product(&format!("catalog[{i}]"), p)?);
        }
        config.catalog = Some(catalog);
    }
    if !get(entries, "chaos").is_absent() {
        let chaos = object("chaos", get(entries, "chaos"))?;
        only(
            "chaos",
            chaos,
            &["duplicateRate", "reorderWindowMs", "delayMs"],
        )?;
        config.chaos = Chaos {
            duplicate_rate: number("chaos.duplicateRate", get(chaos, "duplicateRate"))?
                .unwrap_or(0.0),
            reorder_window_ms: whole(
                "chaos.reorderWindowMs",
                get(chaos, "reorderWindowMs"),
                0.0,
                600_000.0,
            )?
            .unwrap_or(0),
            delay_ms: whole("chaos.delayMs", get(chaos, "delayMs"), 0.0, 600_000.0)?.unwrap_or(0),
        };
    }
    if !get(entries, "webhookRetry").is_absent() {
        let retry = object("webhookRetry", get(entries, "webhookRetry"))?;
        only("webhookRetry", retry, &["maxAttempts", "initialBackoffMs"])?;
        let defaults = RetryPolicy::default();
        config.retry = RetryPolicy {
            max_attempts: whole(
                "webhookRetry.maxAttempts",
                get(retry, "maxAttempts"),
                1.0,
                20.0,
            )?
            .map_or(defaults.max_attempts, |n| n as u32),
            initial_backoff_ms: whole(
                "webhookRetry.initialBackoffMs",
                get(retry, "initialBackoffMs"),
                0.0,
                3_600_000.0,
            )?
            .unwrap_or(defaults.initial_backoff_ms),
        };
    }
    config.api_version = string("apiVersion", get(entries, "apiVersion"))?;
    if let Some(path) = string("state", get(entries, "state"))? {
        if path.trim().is_empty() {
            return Err(BillingError::invalid_config("state", "must be a file path"));
        }
        config.state = Some(path.into());
    }
    config.billing = billing_settings(entries)?;
    config.validate().map_err(|error| match error {
        kavachos_stripe_emulator::EmulatorError::InvalidOption { option, message } => {
            BillingError::invalid_config(option, message)
        }
        other => BillingError::invalid_config("options", other.to_string()),
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(entries: Vec<(&str, OptionValue)>) -> OptionValue {
        OptionValue::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    #[test]
    fn defaults_and_values() {
        let config = emulator_config(&OptionValue::Undefined).unwrap();
        assert_eq!(config.port, 12111);
        let config = emulator_config(&obj(vec![
            ("port", OptionValue::Number(0.0)),
            (
                "chaos",
                obj(vec![("duplicateRate", OptionValue::Number(0.5))]),
            ),
            (
                "webhooks",
                OptionValue::Array(vec![obj(vec![(
                    "url",
                    OptionValue::String("http://127.0.0.1:9/hook".into()),
                )])]),
            ),
        ]))
        .unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.chaos.duplicate_rate, 0.5);
        assert_eq!(config.webhooks[0].events, vec!["*"]);
    }

    #[test]
    fn typos_and_bad_values_are_refused_by_name() {
        let error = emulator_config(&obj(vec![(
            "chaos",
            obj(vec![("duplicate", OptionValue::Number(0.5))]),
        )]))
        .unwrap_err();
        assert!(error.to_string().contains("chaos.duplicate"), "{error}");
        let error =
            emulator_config(&obj(vec![("port", OptionValue::Number(70000.0))])).unwrap_err();
        assert!(error.to_string().contains("port"), "{error}");
        let error = emulator_config(&obj(vec![(
            "webhooks",
            OptionValue::Array(vec![obj(vec![(
                "url",
                OptionValue::String("ftp://x".into()),
            )])]),
        )]))
        .unwrap_err();
        assert!(error.to_string().contains("webhooks[0].url"), "{error}");
    }
}
