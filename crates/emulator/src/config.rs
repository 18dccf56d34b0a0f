//! The emulator's options: port, webhook targets, catalog, chaos, retries.

use crate::error::EmulatorError;
use crate::store::BillingSettings;
use crate::version::ApiVersion;

pub const DEFAULT_PORT: u16 = 12111;

/// Where the emulator sends webhooks (besides endpoints created through the API).
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    /// Event types; `["*"]` for all.
    pub events: Vec<String>,
    pub api_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CatalogPrice {
    pub id: Option<String>,
    pub lookup_key: Option<String>,
    pub nickname: Option<String>,
    pub unit_amount: i64,
    pub currency: String,
    /// `day`, `week`, `month`, `year`; `None` for a one-time price.
    pub interval: Option<String>,
    pub interval_count: i64,
}

#[derive(Debug, Clone)]
pub struct CatalogProduct {
    pub id: Option<String>,
    pub name: String,
    pub prices: Vec<CatalogPrice>,
}

/// Delivery disorder on purpose: what Stripe's at-least-once, unordered
/// delivery can do, made frequent.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    /// Share of deliveries sent twice (0 to 1).
    pub duplicate_rate: f64,
    /// Each delivery waits a random time up to this, so events within the
    /// window overtake each other.
    pub reorder_window_ms: u64,
    /// Every delivery waits this long first.
    pub delay_ms: u64,
}

impl Chaos {
    pub fn is_on(&self) -> bool {
        self.duplicate_rate > 0.0 || self.reorder_window_ms > 0 || self.delay_ms > 0
    }
}

/// Stripe retries a failed delivery for days; the emulator in seconds.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff_ms: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// 0 picks any free port.
    pub port: u16,
    pub webhooks: Vec<WebhookTarget>,
    /// `None`: the default catalog (Basic and Pro, monthly and yearly).
    pub catalog: Option<Vec<CatalogProduct>>,
    pub chaos: Chaos,
    pub retry: RetryPolicy,
    pub api_version: Option<String>,
    /// Dunning and billing mode.
    pub billing: BillingSettings,
    /// A JSON file holding the state across restarts.
    pub state: Option<std::path::PathBuf>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            webhooks: Vec::new(),
            catalog: None,
            chaos: Chaos::default(),
            retry: RetryPolicy::default(),
            api_version: None,
            billing: BillingSettings::default(),
            state: None,
        }
    }
}

fn price(id: &str, nickname: &str, amount: i64, interval: &str) -> CatalogPrice {
    CatalogPrice {
        id: Some(id.to_owned()),
        lookup_key: Some(id.trim_start_matches("price_").to_owned()),
        nickname: Some(nickname.to_owned()),
        unit_amount: amount,
        currency: "usd".to_owned(),
        interval: Some(interval.to_owned()),
        interval_count: 1,
    }
}

/// Two products with a monthly and a yearly price each, at fixed ids
/// (`price_basic_monthly`, `price_pro_yearly`...), so an app can name them.
pub fn default_catalog() -> Vec<CatalogProduct> {
    vec![
        CatalogProduct {
            id: Some("prod_basic".into()),
            name: "Basic".into(),
            prices: vec![
                price("price_basic_monthly", "Basic monthly", 900, "month"),
                price("price_basic_yearly", "Basic yearly", 9000, "year"),
            ],
        },
        CatalogProduct {
            id: Some("prod_pro".into()),
            name: "Pro".into(),
            prices: vec![
                price("price_pro_monthly", "Pro monthly", 2900, "month"),
                price("price_pro_yearly", "Pro yearly", 29000, "year"),
            ],
        },
    ]
}

impl EmulatorConfig {
    pub fn validate(&self) -> Result<(), EmulatorError> {
        for (i, target) in self.webhooks.iter().enumerate() {
            if !(target.url.starts_with("http://") || target.url.starts_with("https://")) {
                return Err(EmulatorError::option(
                    format!("webhooks[{i}].url"),
                    format!("must be an absolute http(s) URL, got {:?}", target.url),
                ));
            }
            if target.events.is_empty() {
                return Err(EmulatorError::option(
                    format!("webhooks[{i}].events"),
                    "must name at least one event type (or \"*\")",
                ));
            }
            if let Some(version) = &target.api_version {
                ApiVersion::parse(version).map_err(|e| {
                    EmulatorError::option(format!("webhooks[{i}].apiVersion"), e.message)
                })?;
            }
        }
        if let Some(version) = &self.api_version {
            ApiVersion::parse(version)
                .map_err(|e| EmulatorError::option("apiVersion", e.message))?;
        }
        if !(0.0..=1.0).contains(&self.chaos.duplicate_rate) || self.chaos.duplicate_rate.is_nan() {
            return Err(EmulatorError::option(
                "chaos.duplicateRate",
                "must be between 0 and 1",
            ));
        }
        if !["classic", "flexible"].contains(&self.billing.billing_mode.as_str()) {
            return Err(EmulatorError::option(
                "billingMode",
                "must be \"classic\" or \"flexible\"",
            ));
        }
        if self.billing.retry_days.len() > 20
            || self.billing.retry_days.windows(2).any(|w| w[0] >= w[1])
            || self
                .billing
                .retry_days
                .iter()
                .any(|d| !(1..=60).contains(d))
        {
            return Err(EmulatorError::option(
                "dunning.retryDays",
                "must be at most 20 increasing whole days from 1 to 60",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(EmulatorError::option(
                "webhookRetry.maxAttempts",
                "must be at least 1",
            ));
        }
        for (i, product) in self.catalog.iter().flatten().enumerate() {
            if product.name.trim().is_empty() {
                return Err(EmulatorError::option(
                    format!("catalog[{i}].name"),
                    "must not be empty",
                ));
            }
            for (j, price) in product.prices.iter().enumerate() {
                let at = format!("catalog[{i}].prices[{j}]");
                if price.unit_amount < 0 {
                    return Err(EmulatorError::option(
                        format!("{at}.unitAmount"),
                        "must be 0 or more",
                    ));
                }
                if price.currency.len() != 3
                    || !price.currency.chars().all(|c| c.is_ascii_lowercase())
                {
                    return Err(EmulatorError::option(
                        format!("{at}.currency"),
                        "must be a lowercase ISO code such as \"usd\"",
                    ));
                }
                if let Some(interval) = &price.interval {
                    if !["day", "week", "month", "year"].contains(&interval.as_str()) {
                        return Err(EmulatorError::option(
                            format!("{at}.interval"),
                            "must be day, week, month or year",
                        ));
                    }
                }
                if price.interval_count < 1 {
                    return Err(EmulatorError::option(
                        format!("{at}.intervalCount"),
                        "must be at least 1",
                    ));
                }
            }
        }
        Ok(())
    }
}
