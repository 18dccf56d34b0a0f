//! `stripe(options)` / `createStripeBilling(options)`: every option, validated
//! synchronously into a `BillingConfig`. Unknown keys are typos and fail.

use std::fmt;

use crate::billing::plans::{parse_plans, plan_prices, Plan};
use crate::error::{BillingError, BillingResult};
use crate::option_value::OptionValue;
use crate::origin::{is_loopback, parse_http_url, parse_origin};
use crate::store::DatabaseOptions;

/// The `Stripe-Version` sent on every request unless `apiVersion` says otherwise.
/// The dahlia train is the newest whose object shapes this package reads
/// (period ends on subscription items, invoice subscription under `parent`).
pub const DEFAULT_API_VERSION: &str = "2026-03-25.dahlia";
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
pub const DEFAULT_WEBHOOK_TOLERANCE_SECS: u64 = 300;
pub const DEFAULT_MAX_WEBHOOK_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_NETWORK_RETRIES: u32 = 2;
/// Per attempt. Three attempts plus backoff stay under the 60 s that common
/// proxies and load balancers allow a request, so a user waiting on a checkout
/// gets our error rather than a gateway timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_EVENT_RETENTION_DAYS: u64 = 30;

/// Whether the options belong to the kavachOS plugin or the standalone API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    Plugin,
    Standalone,
}

/// A secret held in memory; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct BillingConfig {
    pub secret_key: Secret,
    pub webhook_secrets: Vec<Secret>,
    pub has_subscription_listener: bool,
    pub has_auth_resolver: bool,
    /// `createStripeBilling` (no kavachOS host in front, so no host rate limits).
    pub standalone: bool,
    pub api_base: String,
    pub api_version: String,
    pub database: Option<DatabaseOptions>,
    pub base_url: Option<String>,
    pub webhook_tolerance_secs: u64,
    pub max_webhook_bytes: u64,
    pub auto_create_customer: bool,
    pub max_network_retries: u32,
    pub timeout_ms: u64,
    pub trusted_origins: Vec<String>,
    pub prices: Option<Vec<String>>,
    pub products: Option<Vec<String>>,
    pub max_client_trial_days: u32,
    pub client_metadata_keys: Vec<String>,
    /// Days a handled event id stays in the ledger; 0 keeps them forever.
    pub event_retention_days: u32,
    /// The app's plans; empty when the option is not set.
    pub plans: Vec<Plan>,
    /// Whether `past_due` counts as active (Stripe is still retrying).
    pub past_due_is_active: bool,
    /// Whether a user gets at most one free trial.
    pub one_trial_per_user: bool,
    /// `onEvent` is set.
    pub has_event_listener: bool,
    /// Event types the app wants besides those the package handles.
    pub event_types: Vec<String>,
    /// Whether clients may cancel at once (`POST /auth/stripe/cancel` with `immediately`).
    pub client_cancel_immediately: bool,
    /// The largest quantity a client may ask for; `None`: clients send no quantity.
    pub client_quantity_max: Option<u32>,
}

/// Every key `stripe()` accepts; `auth` is added for the standalone API.
const PLUGIN_KEYS: &[&str] = &[
    "secretKey",
    "webhookSecret",
    "onSubscriptionChange",
    "onTrialWillEnd",
    "onEvent",
    "onEventTypes",
    "apiBase",
    "allowInsecureApiBase",
    "apiVersion",
    "database",
    "baseUrl",
    "webhookTolerance",
    "maxWebhookBytes",
    "autoCreateCustomer",
    "maxNetworkRetries",
    "timeoutMs",
    "trustedOrigins",
    "prices",
    "products",
    "maxClientTrialDays",
    "clientMetadataKeys",
    "eventRetentionDays",
    "plans",
    "pastDueIsActive",
    "oneTrialPerUser",
    "clientCancelImmediately",
    "clientQuantity",
];

/// Stripe's metadata limits, which also bound `clientMetadataKeys`.
pub const STRIPE_METADATA_MAX_KEYS: usize = 50;
pub const STRIPE_METADATA_MAX_KEY_CHARS: usize = 40;
pub const STRIPE_METADATA_MAX_VALUE_CHARS: usize = 500;
/// The metadata key this package sets itself; no client may choose it.
pub const USER_ID_METADATA_KEY: &str = "kavach_user_id";

impl BillingConfig {
    pub fn parse(options: &OptionValue, mode: ConfigMode) -> BillingResult<Self> {
        let OptionValue::Object(entries) = options else {
            return Err(BillingError::invalid_config(
                "options",
                format!("must be an object, got {}", options.kind()),
            ));
        };
        for (key, _) in entries {
            let known = PLUGIN_KEYS.contains(&key.as_str())
                || (mode == ConfigMode::Standalone && key == "auth");
            if !known {
                let hint = match (key.as_str(), mode) {
                    ("auth", ConfigMode::Plugin) => {
                        " (`auth` belongs to createStripeBilling; under kavachOS the host resolves the user)".to_owned()
                    }
                    _ => suggestion(key, mode)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default(),
                };
                return Err(BillingError::invalid_config(
                    key.clone(),
                    format!("is not a known option{hint}"),
                ));
            }
        }
        let get = |name: &str| -> &OptionValue {
            entries
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
                .unwrap_or(&OptionValue::Undefined)
        };

        let secret_key = parse_secret_key(get("secretKey"))?;
        let webhook_secrets = parse_webhook_secrets(get("webhookSecret"))?;
        let has_subscription_listener =
            optional_function("onSubscriptionChange", get("onSubscriptionChange"))?;
        optional_function("onTrialWillEnd", get("onTrialWillEnd"))?;
        let has_event_listener = optional_function("onEvent", get("onEvent"))?;
        let event_types = string_list("onEventTypes", get("onEventTypes"))?.unwrap_or_default();
        for (i, event_type) in event_types.iter().enumerate() {
            let plausible = !event_type.is_empty()
                && event_type.len() <= 100
                && event_type.contains('.')
                && event_type.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_')
                });
            if !plausible {
                return Err(BillingError::invalid_config(
                    format!("onEventTypes[{i}]"),
                    "must be a Stripe event type such as charge.refunded (no wildcards: each type is listed by name)",
                ));
            }
        }
        if !event_types.is_empty() && !has_event_listener {
            return Err(BillingError::invalid_config(
                "onEventTypes",
                "needs `onEvent`, the callback those events go to",
            ));
        }
        let has_auth_resolver = optional_function("auth", get("auth"))?;

        let allow_insecure_api_base = match get("allowInsecureApiBase") {
            OptionValue::Undefined => false,
            OptionValue::Bool(flag) => *flag,
            other => return Err(wrong_type("allowInsecureApiBase", "a boolean", other)),
        };
        let api_base = match get("apiBase") {
            OptionValue::Undefined => DEFAULT_API_BASE.to_owned(),
            OptionValue::String(text) => {
                let url = parse_http_url(text.trim()).ok_or_else(|| {
                    BillingError::invalid_config("apiBase", "must be an absolute http(s) URL")
                })?;
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(BillingError::invalid_config(
                        "apiBase",
                        "must not carry a query or fragment",
                    ));
                }
                if url.scheme() == "http" && !is_loopback(&url) && !allow_insecure_api_base {
                    return Err(BillingError::invalid_config(
                        "apiBase",
                        "uses plain http to a host that is not loopback, so the secret key would \
                         travel unencrypted; use https, or set `allowInsecureApiBase: true` for a \
                         stand-in on a private network",
                    ));
                }
                url.as_str().trim_end_matches('/').to_owned()
            }
            other => return Err(wrong_type("apiBase", "a string", other)),
        };

        let api_version = match get("apiVersion") {
            OptionValue::Undefined => DEFAULT_API_VERSION.to_owned(),
            OptionValue::String(text) if is_api_version(text) => text.clone(),
            OptionValue::String(_) => {
                return Err(BillingError::invalid_config(
                    "apiVersion",
                    "must look like a Stripe API version, e.g. 2026-03-25.dahlia",
                ))
            }
            other => return Err(wrong_type("apiVersion", "a string", other)),
        };

        let database = match get("database") {
            OptionValue::Undefined => None,
            value => Some(DatabaseOptions::from_option("database", value)?),
        };
        if mode == ConfigMode::Standalone && database.is_none() {
            return Err(BillingError::invalid_config(
                "database",
                "is required for createStripeBilling: { provider, url }",
            ));
        }

        let base_url = match get("baseUrl") {
            OptionValue::Undefined => None,
            OptionValue::String(text) => Some(
                parse_origin(text.trim())
                    .map_err(|reason| BillingError::invalid_config("baseUrl", reason))?,
            ),
            other => return Err(wrong_type("baseUrl", "a string", other)),
        };

        let webhook_tolerance_secs = integer_in(
            "webhookTolerance",
            get("webhookTolerance"),
            1,
            86_400,
            DEFAULT_WEBHOOK_TOLERANCE_SECS,
        )?;
        let max_webhook_bytes = integer_in(
            "maxWebhookBytes",
            get("maxWebhookBytes"),
            1024,
            64 * 1024 * 1024,
            DEFAULT_MAX_WEBHOOK_BYTES,
        )?;
        let auto_create_customer = match get("autoCreateCustomer") {
            OptionValue::Undefined => true,
            OptionValue::Bool(flag) => *flag,
            other => return Err(wrong_type("autoCreateCustomer", "a boolean", other)),
        };
        let max_network_retries = integer_in(
            "maxNetworkRetries",
            get("maxNetworkRetries"),
            0,
            10,
            u64::from(DEFAULT_MAX_NETWORK_RETRIES),
        )? as u32;
        let timeout_ms = integer_in(
            "timeoutMs",
            get("timeoutMs"),
            100,
            600_000,
            DEFAULT_TIMEOUT_MS,
        )?;

        let trusted_origins = match string_list("trustedOrigins", get("trustedOrigins"))? {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    parse_origin(text.trim()).map_err(|reason| {
                        BillingError::invalid_config(format!("trustedOrigins[{i}]"), reason)
                    })
                })
                .collect::<BillingResult<Vec<_>>>()?,
        };
        let plans = parse_plans(get("plans"))?.unwrap_or_default();
        // With plans, clients may check out the plans' prices unless `prices` says otherwise.
        let prices = match stripe_id_list("prices", get("prices"))? {
            None if !plans.is_empty() => Some(plan_prices(&plans)),
            prices => prices,
        };
        let past_due_is_active = optional_bool("pastDueIsActive", get("pastDueIsActive"), true)?;
        let one_trial_per_user = optional_bool("oneTrialPerUser", get("oneTrialPerUser"), true)?;
        let client_cancel_immediately = optional_bool(
            "clientCancelImmediately",
            get("clientCancelImmediately"),
            false,
        )?;
        let client_quantity_max = match get("clientQuantity") {
            OptionValue::Undefined => None,
            OptionValue::Object(fields) => {
                if let Some((key, _)) = fields.iter().find(|(key, _)| key != "max") {
                    return Err(BillingError::invalid_config(
                        format!("clientQuantity.{}", crate::error::echo(key)),
                        "is not a known field (clientQuantity is { max })",
                    ));
                }
                let max = fields
                    .iter()
                    .find(|(key, _)| key == "max")
                    .map_or(&OptionValue::Undefined, |(_, value)| value);
                if max.is_absent() {
                    return Err(BillingError::invalid_config(
                        "clientQuantity.max",
                        "is required: the largest quantity a client may ask for",
                    ));
                }
                Some(integer_in("clientQuantity.max", max, 1, 1_000_000, 1)? as u32)
            }
            other => return Err(wrong_type("clientQuantity", "an object { max }", other)),
        };
        let products = stripe_id_list("products", get("products"))?;
        let max_client_trial_days =
            integer_in("maxClientTrialDays", get("maxClientTrialDays"), 0, 730, 0)? as u32;

        let client_metadata_keys =
            string_list("clientMetadataKeys", get("clientMetadataKeys"))?.unwrap_or_default();
        if client_metadata_keys.len() > STRIPE_METADATA_MAX_KEYS - 1 {
            return Err(BillingError::invalid_config(
                "clientMetadataKeys",
                format!(
                    "lists more than {} keys (Stripe allows {STRIPE_METADATA_MAX_KEYS}, one is kavach_user_id)",
                    STRIPE_METADATA_MAX_KEYS - 1
                ),
            ));
        }
        for (i, key) in client_metadata_keys.iter().enumerate() {
            let field = format!("clientMetadataKeys[{i}]");
            if key.is_empty() || key.chars().count() > STRIPE_METADATA_MAX_KEY_CHARS {
                return Err(BillingError::invalid_config(
                    field,
                    format!(
                        "must be 1 to {STRIPE_METADATA_MAX_KEY_CHARS} characters (Stripe's limit)"
                    ),
                ));
            }
            if key.contains(['[', ']']) {
                return Err(BillingError::invalid_config(
                    field,
                    "must not contain square brackets",
                ));
            }
            if key == USER_ID_METADATA_KEY {
                return Err(BillingError::invalid_config(
                    field,
                    "kavach_user_id is set by kavachos-stripe itself and cannot come from a client",
                ));
            }
        }

        // Stripe redelivers for up to three days and lists events for 30:
        // keep ids at least as long as a redelivery can come.
        let event_retention_days = match get("eventRetentionDays") {
            OptionValue::Number(n) if *n == 0.0 => 0,
            value => integer_in("eventRetentionDays", value, 3, 3650, DEFAULT_EVENT_RETENTION_DAYS).map_err(|_| {
                BillingError::invalid_config(
                    "eventRetentionDays",
                    "must be 0 (keep forever) or a whole number of days from 3 (Stripe redelivers for three days) to 3650",
                )
            })? as u32,
        };

        Ok(Self {
            secret_key,
            webhook_secrets,
            has_subscription_listener,
            has_auth_resolver,
            standalone: mode == ConfigMode::Standalone,
            api_base,
            api_version,
            database,
            base_url,
            webhook_tolerance_secs,
            max_webhook_bytes,
            auto_create_customer,
            max_network_retries,
            timeout_ms,
            trusted_origins,
            prices,
            products,
            max_client_trial_days,
            client_metadata_keys,
            event_retention_days,
            plans,
            past_due_is_active,
            one_trial_per_user,
            has_event_listener,
            event_types,
            client_cancel_immediately,
            client_quantity_max,
        })
    }
}

fn wrong_type(field: &str, expected: &str, got: &OptionValue) -> BillingError {
    BillingError::invalid_config(field, format!("must be {expected}, got {}", got.kind()))
}

fn parse_secret_key(value: &OptionValue) -> BillingResult<Secret> {
    let key = match value {
        OptionValue::String(key) => key,
        OptionValue::Undefined => {
            return Err(BillingError::invalid_config(
                "secretKey",
                "is required: your Stripe secret key (sk_...) or restricted key (rk_...)",
            ))
        }
        other => return Err(wrong_type("secretKey", "a string", other)),
    };
    if key.trim() != key {
        return Err(BillingError::invalid_config(
            "secretKey",
            "has whitespace around it; check how the key is loaded (a trailing newline in an env file?)",
        ));
    }
    if key.starts_with("pk_") {
        return Err(BillingError::invalid_config(
            "secretKey",
            "is a publishable key (pk_...); the server needs the secret key (sk_...) or a restricted key (rk_...)",
        ));
    }
    let valid_prefix = key.starts_with("sk_") || key.starts_with("rk_");
    if !valid_prefix || key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BillingError::invalid_config(
            "secretKey",
            "must be a Stripe secret key starting with sk_ or rk_",
        ));
    }
    Ok(Secret(key.clone()))
}

fn parse_webhook_secrets(value: &OptionValue) -> BillingResult<Vec<Secret>> {
    let list: Vec<(String, &OptionValue)> = match value {
        OptionValue::Undefined => return Ok(Vec::new()),
        OptionValue::Array(items) if items.is_empty() => {
            return Err(BillingError::invalid_config(
                "webhookSecret",
                "is an empty array; leave it out to reject all webhooks, or list at least one whsec_ secret",
            ))
        }
        OptionValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("webhookSecret[{i}]"), item))
            .collect(),
        single => vec![("webhookSecret".to_owned(), single)],
    };
    list.into_iter()
        .map(|(field, item)| match item {
            OptionValue::String(secret) => {
                if secret.trim() != secret {
                    return Err(BillingError::invalid_config(
                        field,
                        "has whitespace around it; Stripe signs with the exact secret, so it would never verify",
                    ));
                }
                if !secret.starts_with("whsec_") || secret.len() <= "whsec_".len() {
                    return Err(BillingError::invalid_config(
                        field,
                        "must be a webhook signing secret starting with whsec_",
                    ));
                }
                Ok(Secret(secret.clone()))
            }
            other => Err(wrong_type(&field, "a string (or an array of strings)", other)),
        })
        .collect()
}

fn optional_bool(field: &str, value: &OptionValue, default: bool) -> BillingResult<bool> {
    match value {
        OptionValue::Undefined => Ok(default),
        OptionValue::Bool(flag) => Ok(*flag),
        other => Err(wrong_type(field, "a boolean", other)),
    }
}

fn optional_function(field: &str, value: &OptionValue) -> BillingResult<bool> {
    match value {
        OptionValue::Undefined => Ok(false),
        OptionValue::Function => Ok(true),
        other => Err(wrong_type(field, "a function", other)),
    }
}

fn integer_in(
    field: &str,
    value: &OptionValue,
    min: u64,
    max: u64,
    default: u64,
) -> BillingResult<u64> {
    match value {
        OptionValue::Undefined => Ok(default),
        OptionValue::Number(n) if n.fract() == 0.0 && *n >= min as f64 && *n <= max as f64 => {
            Ok(*n as u64)
        }
        OptionValue::Number(_) => Err(BillingError::invalid_config(
            field,
            format!("must be a whole number from {min} to {max}"),
        )),
        other => Err(wrong_type(field, "a number", other)),
    }
}

fn string_list(field: &str, value: &OptionValue) -> BillingResult<Option<Vec<String>>> {
    match value {
        OptionValue::Undefined => Ok(None),
        OptionValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                OptionValue::String(text) => Ok(text.clone()),
                other => Err(wrong_type(&format!("{field}[{i}]"), "a string", other)),
            })
            .collect::<BillingResult<Vec<_>>>()
            .map(Some),
        other => Err(wrong_type(field, "an array of strings", other)),
    }
}

/// Price and product ids: non-empty, no whitespace or control characters.
fn stripe_id_list(field: &str, value: &OptionValue) -> BillingResult<Option<Vec<String>>> {
    let Some(list) = string_list(field, value)? else {
        return Ok(None);
    };
    if list.is_empty() {
        return Err(BillingError::invalid_config(
            field,
            "is an empty array, which would allow nothing; leave it out to allow every id",
        ));
    }
    for (i, id) in list.iter().enumerate() {
        if !is_stripe_id(id) {
            return Err(BillingError::invalid_config(
                format!("{field}[{i}]"),
                "must be a Stripe id (1 to 255 letters, digits, `_`, `-` or `.`)",
            ));
        }
    }
    Ok(Some(list))
}

/// Stripe ids (and legacy plan ids) are letters, digits, `_`, `-` and `.`;
/// quotes, spaces and anything else never reach Stripe or the database.
pub fn is_stripe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `YYYY-MM-DD` optionally followed by `.name` (e.g. `2026-03-25.dahlia`).
fn is_api_version(text: &str) -> bool {
    let (date, name) = match text.split_once('.') {
        Some((date, name)) => (date, Some(name)),
        None => (text, None),
    };
    let date_ok = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let name_ok = name.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()));
    date_ok && name_ok
}

/// The closest known key to a typo, by edit distance.
fn suggestion(key: &str, mode: ConfigMode) -> Option<&'static str> {
    let standalone = ["auth"];
    let extra: &[&'static str] = if mode == ConfigMode::Standalone {
        &standalone
    } else {
        &[]
    };
    PLUGIN_KEYS
        .iter()
        .chain(extra.iter())
        .map(|known| {
            (
                edit_distance(&key.to_ascii_lowercase(), &known.to_ascii_lowercase()),
                *known,
            )
        })
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(entries: &[(&str, OptionValue)]) -> OptionValue {
        OptionValue::Object(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    fn s(text: &str) -> OptionValue {
        OptionValue::String(text.into())
    }
    const KEY: &str = "sk_test_51abcdefSECRET";

    #[test]
    fn defaults() {
        let config =
            BillingConfig::parse(&obj(&[("secretKey", s(KEY))]), ConfigMode::Plugin).unwrap();
        assert_eq!(config.api_base, DEFAULT_API_BASE);
        assert_eq!(config.api_version, DEFAULT_API_VERSION);
        assert_eq!(config.webhook_tolerance_secs, 300);
        assert_eq!(config.max_webhook_bytes, 1 << 20);
        assert!(config.auto_create_customer);
        assert_eq!(config.max_network_retries, 2);
        assert_eq!(config.timeout_ms, 15_000);
        assert_eq!(config.max_client_trial_days, 0);
        assert!(config.webhook_secrets.is_empty());
        assert!(config.prices.is_none());
        assert_eq!(config.event_retention_days, 30);
    }

    #[test]
    fn full_options() {
        let options = obj(&[
            ("secretKey", s("rk_live_abcdefgh")),
            (
                "webhookSecret",
                OptionValue::Array(vec![s("whsec_a"), s("whsec_b")]),
            ),
            ("onSubscriptionChange", OptionValue::Function),
            ("apiBase", s("http://127.0.0.1:12111/")),
            ("apiVersion", s("2025-03-31.basil")),
            ("baseUrl", s("https://app.example")),
            (
                "trustedOrigins",
                OptionValue::Array(vec![s("https://www.app.example/")]),
            ),
            ("prices", OptionValue::Array(vec![s("price_1")])),
            ("maxClientTrialDays", OptionValue::Number(14.0)),
            (
                "clientMetadataKeys",
                OptionValue::Array(vec![s("campaign")]),
            ),
        ]);
        let config = BillingConfig::parse(&options, ConfigMode::Plugin).unwrap();
        assert_eq!(config.webhook_secrets.len(), 2);
        assert_eq!(config.api_base, "http://127.0.0.1:12111");
        assert_eq!(
            config.trusted_origins,
            vec!["https://www.app.example".to_owned()]
        );
        assert!(config.has_subscription_listener);
    }

    fn error_of(options: OptionValue, mode: ConfigMode) -> String {
        let err = BillingConfig::parse(&options, mode).unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        err.to_string()
    }

    #[test]
    fn errors_name_the_field_and_never_the_secret() {
        let msg = error_of(obj(&[]), ConfigMode::Plugin);
        assert!(msg.contains("secretKey"), "{msg}");
        let msg = error_of(
            obj(&[("secretKey", s("pk_test_SECRETVALUE"))]),
            ConfigMode::Plugin,
        );
        assert!(
            msg.contains("publishable") && !msg.contains("SECRETVALUE"),
            "{msg}"
        );
        let msg = error_of(
            obj(&[("secretKey", s("sk_test_SECRETVALUE\n"))]),
            ConfigMode::Plugin,
        );
        assert!(
            msg.contains("whitespace") && !msg.contains("SECRETVALUE"),
            "{msg}"
        );
        let msg = error_of(
            obj(&[
                ("secretKey", s(KEY)),
                ("webhookSecret", s(" whsec_SECRETVALUE")),
            ]),
            ConfigMode::Plugin,
        );
        assert!(
            msg.contains("webhookSecret")
                && msg.contains("whitespace")
                && !msg.contains("SECRETVALUE")
        );
        let msg = error_of(
            obj(&[
                ("secretKey", s(KEY)),
                (
                    "webhookSecret",
                    OptionValue::Array(vec![s("whsec_ok"), s("SECRETVALUE")]),
                ),
            ]),
            ConfigMode::Plugin,
        );
        assert!(
            msg.contains("webhookSecret[1]") && !msg.contains("SECRETVALUE"),
            "{msg}"
        );
    }

    #[test]
    fn typos_are_rejected_with_a_suggestion() {
        let msg = error_of(
            obj(&[("secretKey", s(KEY)), ("webhookSecrets", s("whsec_x"))]),
            ConfigMode::Plugin,
        );
        assert!(
            msg.contains("`webhookSecrets`") && msg.contains("did you mean `webhookSecret`"),
            "{msg}"
        );
        let msg = error_of(
            obj(&[("secretKey", s(KEY)), ("auth", OptionValue::Function)]),
            ConfigMode::Plugin,
        );
        assert!(msg.contains("createStripeBilling"), "{msg}");
    }

    #[test]
    fn value_checks() {
        let cases: Vec<(&str, OptionValue)> = vec![
            ("webhookTolerance", OptionValue::Number(0.0)),
            ("webhookTolerance", OptionValue::Number(1.5)),
            ("maxWebhookBytes", s("1mb")),
            ("maxNetworkRetries", OptionValue::Number(-1.0)),
            ("timeoutMs", OptionValue::Number(50.0)),
            ("autoCreateCustomer", s("yes")),
            ("apiBase", s("api.stripe.com")),
            ("apiVersion", s("latest")),
            ("baseUrl", s("https://app.example/billing")),
            ("trustedOrigins", s("https://a.example")),
            ("prices", OptionValue::Array(vec![])),
            ("products", OptionValue::Array(vec![s("prod 1")])),
            ("maxClientTrialDays", OptionValue::Number(731.0)),
            (
                "clientMetadataKeys",
                OptionValue::Array(vec![s("kavach_user_id")]),
            ),
            (
                "clientMetadataKeys",
                OptionValue::Array(vec![s(&"k".repeat(41))]),
            ),
            ("onSubscriptionChange", s("notify")),
            ("database", s("postgres://x")),
            ("eventRetentionDays", OptionValue::Number(2.0)),
        ];
        for (field, value) in cases {
            let msg = error_of(
                obj(&[("secretKey", s(KEY)), (field, value)]),
                ConfigMode::Plugin,
            );
            assert!(msg.contains(field), "{field}: {msg}");
        }
    }

    #[test]
    fn plain_http_api_base_only_to_loopback_unless_allowed() {
        let with = |base: &str, allow: Option<bool>| {
            let mut entries = vec![("secretKey", s(KEY)), ("apiBase", s(base))];
            if let Some(flag) = allow {
                entries.push(("allowInsecureApiBase", OptionValue::Bool(flag)));
            }
            BillingConfig::parse(&obj(&entries), ConfigMode::Plugin)
        };
        for base in [
            "http://example.com",
            "http://api.stripe.com",
            "http://stripe-mock:12111",
        ] {
            let error = with(base, None)
                .err()
                .map(|e| (e.code().to_owned(), e.to_string()));
            assert!(
                matches!(&error, Some((code, message)) if code == "invalid_config" && message.contains("allowInsecureApiBase")),
                "{base}: {error:?}"
            );
            assert!(with(base, Some(false)).is_err(), "{base}");
            assert!(with(base, Some(true)).is_ok(), "{base}");
        }
        for base in [
            "http://localhost:12111",
            "http://127.0.0.1:12111",
            "http://127.1.2.3/",
            "http://[::1]:12111",
            "https://api.stripe.com",
            "https://example.com/stripe",
        ] {
            assert!(with(base, None).is_ok(), "{base}");
        }
        let msg = error_of(
            obj(&[("secretKey", s(KEY)), ("allowInsecureApiBase", s("yes"))]),
            ConfigMode::Plugin,
        );
        assert!(msg.contains("allowInsecureApiBase"), "{msg}");
    }

    #[test]
    fn standalone_requires_a_database_and_accepts_auth() {
        let msg = error_of(obj(&[("secretKey", s(KEY))]), ConfigMode::Standalone);
        assert!(msg.contains("database"));
        let options = obj(&[
            ("secretKey", s(KEY)),
            ("auth", OptionValue::Function),
            (
                "database",
                obj(&[("provider", s("sqlite")), ("url", s(":memory:"))]),
            ),
        ]);
        let config = BillingConfig::parse(&options, ConfigMode::Standalone).unwrap();
        assert!(config.has_auth_resolver);
    }

    #[test]
    fn api_versions() {
        assert!(is_api_version("2025-03-31.basil"));
        assert!(is_api_version("2024-06-20"));
        assert!(!is_api_version("2025-03-31."));
        assert!(!is_api_version("2025-3-31"));
    }
}
