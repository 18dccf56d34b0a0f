//! The `#[napi]` layer of the `kavachos-stripe` command: options in, the
//! reports of `src/ops/` out (as JSON for the script to print).

use napi::bindgen_prelude::Unknown;
use napi_derive::napi;

use crate::binding::{coded, option_value, to_js};
use crate::config::{DEFAULT_API_BASE, DEFAULT_API_VERSION};
use crate::events::HANDLED_EVENT_TYPES;
use crate::ops::doctor::{run_doctor, DoctorInput};
use crate::ops::migrate::migrate_database;
use crate::option_value::OptionValue;
use crate::store::DatabaseOptions;

/// The event types this package handles (what a webhook endpoint must send).
#[napi(catch_unwind)]
pub fn handled_event_types() -> Vec<String> {
    HANDLED_EVENT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect()
}

/// The event types the emulator's `trigger` can make happen.
#[napi(catch_unwind)]
pub fn emulator_triggerable_events() -> Vec<String> {
    kavachos_stripe_emulator::triggers::TRIGGERABLE
        .iter()
        .map(|t| (*t).to_owned())
        .collect()
}

/// The command's configuration: `{ secretKey?, apiBase?, database?, webhookUrl? }`.
#[napi]
pub struct NativeCliOptions {
    secret_key: Option<String>,
    api_base: String,
    database: Option<Result<DatabaseOptions, String>>,
    webhook_url: Option<String>,
}

fn text(entries: &[(String, OptionValue)], key: &str) -> Option<String> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            OptionValue::String(s) => Some(s.clone()),
            _ => None,
        })
}

#[napi(catch_unwind, ts_args_type = "options: unknown")]
pub fn parse_cli_options(options: Unknown<'_>) -> napi::Result<NativeCliOptions> {
    let value = option_value(&options, 0).map_err(|e| coded("invalid_config", e.reason))?;
    let OptionValue::Object(entries) = &value else {
        return Err(coded("invalid_config", "options must be an object"));
    };
    let database = entries
        .iter()
        .find(|(k, v)| k == "database" && !v.is_absent())
        .map(|(_, v)| DatabaseOptions::from_option("database", v).map_err(|e| e.to_string()));
    Ok(NativeCliOptions {
        secret_key: text(entries, "secretKey"),
        api_base: text(entries, "apiBase").unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
        database,
        webhook_url: text(entries, "webhookUrl"),
    })
}

#[napi]
impl NativeCliOptions {
    /// The doctor's report, as JSON.
    #[napi]
    pub async fn doctor(&self) -> napi::Result<String> {
        let report = run_doctor(DoctorInput {
            secret_key: self.secret_key.clone(),
            api_base: self.api_base.clone(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            database: self.database.clone(),
            webhook_url: self.webhook_url.clone(),
        })
        .await;
        serde_json::to_string(&report).map_err(|e| coded("internal_error", e.to_string()))
    }

    /// Runs the migrations; the report as JSON.
    #[napi]
    pub async fn migrate(&self, standalone: bool) -> napi::Result<String> {
        let database = match &self.database {
            None => {
                return Err(coded(
                    "invalid_config",
                    "no database: set DATABASE_URL or pass --database",
                ))
            }
            Some(Err(reason)) => return Err(coded("invalid_config", reason.clone())),
            Some(Ok(options)) => options.clone(),
        };
        let report = migrate_database(&database, standalone)
            .await
            .map_err(to_js)?;
        serde_json::to_string(&report).map_err(|e| coded("internal_error", e.to_string()))
    }
}
