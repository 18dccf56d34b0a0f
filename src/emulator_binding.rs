//! The `#[napi]` layer of `kavachos-stripe/emulator`: options in, a handle
//! out. The emulator itself is the `kavachos-stripe-emulator` crate.

use std::sync::Arc;

use kavachos_stripe_emulator::triggers::TriggerFor;
use kavachos_stripe_emulator::{Emulator, EmulatorConfig, EmulatorError};
use napi::bindgen_prelude::Unknown;
use napi_derive::napi;

use crate::binding::{coded, option_value, to_js};
use crate::emulator_options::emulator_config;

/// Parsed options, ready to start.
#[napi]
pub struct NativeEmulatorOptions {
    config: EmulatorConfig,
}

#[napi(catch_unwind, ts_args_type = "options: unknown")]
pub fn parse_emulator_options(options: Unknown<'_>) -> napi::Result<NativeEmulatorOptions> {
    let value = option_value(&options, 0).map_err(|e| coded("invalid_config", e.reason))?;
    let config = emulator_config(&value).map_err(to_js)?;
    Ok(NativeEmulatorOptions { config })
}

#[napi]
impl NativeEmulatorOptions {
    #[napi]
    pub async fn start(&self) -> napi::Result<NativeStripeEmulator> {
        let emulator =
            Emulator::start(self.config.clone())
                .await
                .map_err(|error| match &error {
                    EmulatorError::Listen { .. } => {
                        coded("emulator_listen_failed", error.to_string())
                    }
                    EmulatorError::InvalidOption { .. } => {
                        coded("invalid_config", error.to_string())
                    }
                    EmulatorError::State(_) => coded("emulator_state_invalid", error.to_string()),
                })?;
        Ok(NativeStripeEmulator {
            inner: Arc::new(emulator),
        })
    }
}

/// A running emulator.
#[napi]
pub struct NativeStripeEmulator {
    inner: Arc<Emulator>,
}

#[napi]
impl NativeStripeEmulator {
    #[napi(getter)]
    pub fn api_base(&self) -> String {
        self.inner.api_base.clone()
    }

    #[napi(getter)]
    pub fn webhook_secret(&self) -> String {
        self.inner.webhook_secret.clone()
    }

    #[napi(getter)]
    pub fn dashboard_url(&self) -> String {
        self.inner.dashboard_url.clone()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.inner.port)
    }

    /// Every webhook delivery attempt, as a JSON array.
    #[napi(catch_unwind)]
    pub fn deliveries_json(&self) -> String {
        serde_json::to_string(&self.inner.deliveries()).unwrap_or_else(|_| "[]".into())
    }

    /// The emulator's time, unix seconds.
    #[napi(catch_unwind)]
    pub fn now(&self) -> i64 {
        self.inner.now()
    }

    /// Moves the clock forward by `seconds`, running what falls due in order.
    #[napi]
    pub async fn advance_time(&self, seconds: i64) -> napi::Result<i64> {
        if seconds < 1 {
            return Err(coded(
                "invalid_argument",
                "advanceTime takes a whole number of seconds, 1 or more",
            ));
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.advance_time(seconds))
            .await
            .map_err(|e| coded("internal_error", e.to_string()))
    }

    /// Makes `kind` happen for a customer (`customer`) or a new one
    /// (`email`, `metadata` as a JSON object of strings).
    #[napi]
    pub async fn trigger(
        &self,
        kind: String,
        customer: Option<String>,
        email: Option<String>,
        metadata_json: Option<String>,
    ) -> napi::Result<()> {
        let metadata: Vec<(String, String)> = match metadata_json {
            None => Vec::new(),
            Some(text) => serde_json::from_str::<std::collections::BTreeMap<String, String>>(&text)
                .map_err(|_| coded("invalid_argument", "metadata must be an object of strings"))?
                .into_iter()
                .collect(),
        };
        let target = TriggerFor {
            customer,
            email,
            metadata,
        };
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.trigger(&kind, &target))
            .await
            .map_err(|e| coded("internal_error", e.to_string()))?
            .map_err(|e| coded(e.code.as_deref().unwrap_or("trigger_failed"), e.message))
    }

    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}
