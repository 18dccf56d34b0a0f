//! `kavachos-stripe doctor`: checks a deployment as a release pipeline
//! would, and says what to fix. The key and its mode; Stripe reachable with
//! it; the database reachable and migrated; a webhook endpoint at Stripe
//! for the app's URL, in the key's mode, sending every event this package
//! handles.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::events::HANDLED_EVENT_TYPES;
use crate::store::migrate::SCHEMA_VERSION;
use crate::store::{DatabaseOptions, DatabaseSource, DatabaseTarget, Store};

/// How one check came out. The CLI's exit code is the worst of them:
/// `Missing` 3, `Unreachable` 4, `Failed` 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Not checked (nothing to check it against).
    Skipped,
    /// It was checked and is wrong.
    Failed,
    /// Configuration is missing or invalid.
    Missing,
    /// Stripe or the database did not answer.
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: &'static str,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            fix,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    pub ok: bool,
    pub exit_code: i32,
    pub checks: Vec<Check>,
}

pub struct DoctorInput {
    pub secret_key: Option<String>,
    pub api_base: String,
    pub api_version: String,
    /// `Err` holds why the database configuration is unusable.
    pub database: Option<Result<DatabaseOptions, String>>,
    pub webhook_url: Option<String>,
}

/// `test` or `live`, from the key's prefix.
fn key_mode(key: &str) -> Option<&'static str> {
    let key = key.trim();
    let body_ok = |prefix: &str| key.len() > prefix.len() + 8 && key.is_char_boundary(prefix.len());
    if (key.starts_with("sk_test_") && body_ok("sk_test_"))
        || (key.starts_with("rk_test_") && body_ok("rk_test_"))
    {
        Some("test")
    } else if (key.starts_with("sk_live_") && body_ok("sk_live_"))
        || (key.starts_with("rk_live_") && body_ok("rk_live_"))
    {
        Some("live")
    } else {
        None
    }
}

fn exit_code(checks: &[Check]) -> i32 {
    let has = |status| checks.iter().any(|c| c.status == status);
    if has(CheckStatus::Missing) {
        3
    } else if has(CheckStatus::Unreachable) {
        4
    } else if has(CheckStatus::Failed) {
        1
    } else {
        0
    }
}

/// Every webhook endpoint at Stripe (all pages).
async fn webhook_endpoints(input: &DoctorInput, key: &str) -> Result<Vec<Value>, Check> {
    crate::stripe::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| {
            Check::new(
                "stripe",
                CheckStatus::Failed,
                format!("cannot build an HTTP client: {e}"),
                None,
            )
        })?;
    let mut endpoints = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..50 {
        let mut url = format!(
            "{}/v1/webhook_endpoints?limit=100",
            input.api_base.trim_end_matches('/')
        );
        if let Some(id) = &after {
            url.push_str(&format!("&starting_after={id}"));
        }
        let answer = http
            .get(&url)
            .bearer_auth(key)
            .header("Stripe-Version", &input.api_version)
            .send()
            .await
            .map_err(|e| {
                Check::new(
                    "stripe",
                    CheckStatus::Unreachable,
                    format!("{} did not answer: {e}", input.api_base),
                    Some("check the network, or --api-base".into()),
                )
            })?;
        let status = answer.status().as_u16();
        let body: Value = answer
            .text()
            .await
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        if status == 401 || status == 403 {
            return Err(Check::new(
                "stripe",
                CheckStatus::Failed,
                format!(
                    "Stripe refused the key ({status}): {}",
                    body["error"]["message"].as_str().unwrap_or("no message")
                ),
                Some("use a current secret key from the Dashboard, Developers → API keys (a restricted key needs read access to webhook endpoints)".into()),
            ));
        }
        if status != 200 {
            return Err(Check::new(
                "stripe",
                CheckStatus::Unreachable,
                format!("Stripe answered {status} listing webhook endpoints"),
                None,
            ));
        }
        let page = body["data"].as_array().cloned().unwrap_or_default();
        after = page
            .last()
            .and_then(|e| e["id"].as_str())
            .map(str::to_owned);
        endpoints.extend(page);
        if body["has_more"] != true || after.is_none() {
            break;
        }
    }
    Ok(endpoints)
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

fn endpoint_check(endpoints: &[Value], url: &str, mode: &str) -> Check {
    let name = "webhook endpoint";
    let events = HANDLED_EVENT_TYPES.join(", ");
    let Some(endpoint) = endpoints
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| same_url(u, url)))
    else {
        return Check::new(
            name,
            CheckStatus::Failed,
            format!("no webhook endpoint at Stripe ({mode} mode) sends to {url}"),
            Some(format!(
                "add one in the Dashboard (Developers → Webhooks) for {url} with the events {events}, and set STRIPE_WEBHOOK_SECRET to its signing secret"
            )),
        );
    };
    let livemode = endpoint["livemode"].as_bool().unwrap_or(false);
    if livemode != (mode == "live") {
        return Check::new(
            name,
            CheckStatus::Failed,
            format!(
                "the endpoint for {url} is a {} mode endpoint, the key is a {mode} mode key",
                if livemode { "live" } else { "test" }
            ),
            Some(format!(
                "create the endpoint in {mode} mode, or use the {} mode key",
                if livemode { "live" } else { "test" }
            )),
        );
    }
    if endpoint["status"] == "disabled" {
        return Check::new(
            name,
            CheckStatus::Failed,
            format!("the endpoint for {url} is disabled"),
            Some("enable it in the Dashboard (Developers → Webhooks)".into()),
        );
    }
    let enabled: Vec<&str> = endpoint["enabled_events"]
        .as_array()
        .map(|events| events.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if enabled.contains(&"*") {
        return Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "{} sends every event to {url}",
                endpoint["id"].as_str().unwrap_or("the endpoint")
            ),
            None,
        );
    }
    let missing: Vec<&str> = HANDLED_EVENT_TYPES
        .iter()
        .copied()
        .filter(|event| !enabled.contains(event))
        .collect();
    if missing.is_empty() {
        Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "{} sends every event this package handles to {url}",
                endpoint["id"].as_str().unwrap_or("the endpoint")
            ),
            None,
        )
    } else {
        Check::new(
            name,
            CheckStatus::Failed,
            format!(
                "the endpoint for {url} does not send: {}",
                missing.join(", ")
            ),
            Some(format!(
                "add these events to the endpoint (Dashboard → Developers → Webhooks → {})",
                endpoint["id"].as_str().unwrap_or("the endpoint")
            )),
        )
    }
}

async fn database_check(database: &Option<Result<DatabaseOptions, String>>) -> Check {
    let name = "database";
    let options =
        match database {
            None => return Check::new(
                name,
                CheckStatus::Missing,
                "no database given",
                Some(
                    "set DATABASE_URL (postgres://, mysql://, or a SQLite path) or pass --database"
                        .into(),
                ),
            ),
            Some(Err(reason)) => {
                return Check::new(
                    name,
                    CheckStatus::Missing,
                    reason.clone(),
                    Some("fix DATABASE_URL or --database".into()),
                )
            }
            Some(Ok(options)) => options,
        };
    let target = match options.target(DatabaseSource::Options) {
        Ok(target) => target,
        Err(error) => {
            return Check::new(
                name,
                CheckStatus::Missing,
                error.to_string(),
                Some("fix DATABASE_URL or --database".into()),
            )
        }
    };
    // Checking must not create a SQLite file that is not there.
    if let DatabaseTarget::SqliteFile { path } = &target {
        if !std::path::Path::new(path).exists() {
            return Check::new(
                name,
                CheckStatus::Unreachable,
                format!("no SQLite file at {path}"),
                Some("check the path, or run `kavachos-stripe migrate --standalone` to create the database".into()),
            );
        }
    }
    let store = match Store::connect(&target).await {
        Ok(store) => store,
        Err(error) => {
            return Check::new(
                name,
                CheckStatus::Unreachable,
                format!("cannot connect: {}", error.public_message()),
                Some(
                    "check that the database runs and the URL's host, port, user and password"
                        .into(),
                ),
            )
        }
    };
    let version = store.schema_version().await;
    store.close().await;
    match version {
        Ok(version) if version == SCHEMA_VERSION => Check::new(name, CheckStatus::Ok, format!("reachable, schema version {version} (current)"), None),
        Ok(version) if version > SCHEMA_VERSION => Check::new(
            name,
            CheckStatus::Failed,
            format!("schema version {version} is newer than this package's ({SCHEMA_VERSION})"),
            Some("upgrade kavachos-stripe".into()),
        ),
        Ok(version) => Check::new(
            name,
            CheckStatus::Failed,
            format!("schema version {version}, this package needs {SCHEMA_VERSION}"),
            Some("run `kavachos-stripe migrate` (add --standalone for a database without a kavachOS host)".into()),
        ),
        Err(error) => Check::new(name, CheckStatus::Unreachable, error.public_message(), None),
    }
}

pub async fn run_doctor(input: DoctorInput) -> DoctorReport {
    let mut checks = Vec::new();
    let key = input
        .secret_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let mode = key.and_then(key_mode);
    match (key, mode) {
        (None, _) => checks.push(Check::new(
            "secret key",
            CheckStatus::Missing,
            "no Stripe secret key",
            Some("set STRIPE_SECRET_KEY (Dashboard → Developers → API keys)".into()),
        )),
        (Some(_), None) => checks.push(Check::new(
            "secret key",
            CheckStatus::Missing,
            "the key is not a Stripe secret key (sk_test_..., sk_live_..., rk_test_..., rk_live_...)",
            Some("use the secret key, not the publishable key (pk_...)".into()),
        )),
        (Some(_), Some(mode)) => checks.push(Check::new("secret key", CheckStatus::Ok, format!("present, {mode} mode"), None)),
    }
    match (key, mode) {
        (Some(key), Some(mode)) => match webhook_endpoints(&input, key).await {
            Ok(endpoints) => {
                checks.push(Check::new(
                    "stripe",
                    CheckStatus::Ok,
                    format!("{} answers with this key", input.api_base),
                    None,
                ));
                match &input.webhook_url {
                    Some(url) => checks.push(endpoint_check(&endpoints, url, mode)),
                    None => checks.push(Check::new(
                        "webhook endpoint",
                        CheckStatus::Skipped,
                        format!("{} endpoint(s) at Stripe; pass --url with the app's webhook URL to check one", endpoints.len()),
                        None,
                    )),
                }
            }
            Err(check) => {
                checks.push(check);
                checks.push(Check::new(
                    "webhook endpoint",
                    CheckStatus::Skipped,
                    "needs Stripe",
                    None,
                ));
            }
        },
        _ => {
            checks.push(Check::new(
                "stripe",
                CheckStatus::Skipped,
                "needs a secret key",
                None,
            ));
            checks.push(Check::new(
                "webhook endpoint",
                CheckStatus::Skipped,
                "needs a secret key",
                None,
            ));
        }
    }
    checks.push(database_check(&input.database).await);
    let exit_code = exit_code(&checks);
    DoctorReport {
        ok: exit_code == 0,
        exit_code,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_modes() {
        assert_eq!(key_mode("sk_test_0123456789"), Some("test"));
        assert_eq!(key_mode("rk_live_0123456789"), Some("live"));
        assert_eq!(key_mode("pk_test_0123456789"), None);
        assert_eq!(key_mode("sk_test_"), None);
    }

    #[test]
    fn endpoint_checks() {
        let all: Vec<&str> = HANDLED_EVENT_TYPES.to_vec();
        let endpoints = vec![
            json!({"id": "we_1", "url": "https://app.example/hook", "livemode": false, "status": "enabled", "enabled_events": all}),
        ];
        assert_eq!(
            endpoint_check(&endpoints, "https://app.example/hook/", "test").status,
            CheckStatus::Ok
        );
        assert_eq!(
            endpoint_check(&endpoints, "https://app.example/hook", "live").status,
            CheckStatus::Failed
        );
        assert_eq!(
            endpoint_check(&endpoints, "https://other.example/hook", "test").status,
            CheckStatus::Failed
        );
        let partial = vec![
            json!({"id": "we_2", "url": "https://app.example/hook", "livemode": false, "status": "enabled", "enabled_events": ["invoice.paid"]}),
        ];
        let check = endpoint_check(&partial, "https://app.example/hook", "test");
        assert_eq!(check.status, CheckStatus::Failed);
        assert!(check.detail.contains("customer.subscription.updated"));
        let checks = [
            Check::new("a", CheckStatus::Failed, "", None),
            Check::new("b", CheckStatus::Unreachable, "", None),
        ];
        assert_eq!(exit_code(&checks), 4);
    }
}
