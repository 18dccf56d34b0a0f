//! Which database the native pool opens, and the rules for sharing a database
//! with a kavachOS host.

use crate::error::{BillingError, BillingResult};
use crate::option_value::OptionValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Postgres,
    Mysql,
    /// better-sqlite3 on a file in the host: shareable with WAL and a busy timeout.
    SqliteNative,
    /// A SQLite file given to this package (or sql.js when it comes from a host).
    Sqlite,
}

impl Provider {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "postgres" => Some(Self::Postgres),
            "mysql" => Some(Self::Mysql),
            "sqlite-native" => Some(Self::SqliteNative),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// Where the database configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseSource {
    /// The `database` option of `stripe()` / `createStripeBilling()`: ours alone.
    Options,
    /// `ctx.config.database` of the kavachOS host: shared with the host's driver.
    Host,
}

/// A validated database target the store can connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Postgres { url: String },
    Mysql { url: String },
    SqliteFile { path: String },
    SqliteMemory,
}

/// `{ provider, url }` as given in options (shape errors are `invalid_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    pub provider: Provider,
    pub url: String,
}

const PROVIDERS: &str = "'postgres', 'mysql', 'sqlite-native' or 'sqlite'";

impl DatabaseOptions {
    /// Validates the `database` option. `field` names it in errors.
    pub fn from_option(field: &str, value: &OptionValue) -> BillingResult<Self> {
        let OptionValue::Object(entries) = value else {
            return Err(BillingError::invalid_config(
                field,
                format!(
                    "must be an object {{ provider, url }}, got {}",
                    value.kind()
                ),
            ));
        };
        let mut provider = None;
        let mut url = None;
        for (key, value) in entries {
            match (key.as_str(), value) {
                (_, OptionValue::Undefined) => {}
                ("provider", OptionValue::String(name)) => {
                    provider = Some(Provider::parse(name).ok_or_else(|| {
                        BillingError::invalid_config(
                            format!("{field}.provider"),
                            format!("must be one of {PROVIDERS}"),
                        )
                    })?);
                }
                ("provider", other) => {
                    return Err(BillingError::invalid_config(
                        format!("{field}.provider"),
                        format!("must be a string, got {}", other.kind()),
                    ))
                }
                ("url", OptionValue::String(text)) => url = Some(text.clone()),
                ("url", other) => {
                    return Err(BillingError::invalid_config(
                        format!("{field}.url"),
                        format!("must be a string, got {}", other.kind()),
                    ))
                }
                (unknown, _) => {
                    return Err(BillingError::invalid_config(
                        format!("{field}.{unknown}"),
                        "is not a known option (expected provider and url)",
                    ))
                }
            }
        }
        let provider = provider.ok_or_else(|| {
            BillingError::invalid_config(
                format!("{field}.provider"),
                format!("is required: one of {PROVIDERS}"),
            )
        })?;
        let url =
            url.ok_or_else(|| BillingError::invalid_config(format!("{field}.url"), "is required"))?;
        let options = Self { provider, url };
        // Check the URL's form now, so a typo fails at configuration time.
        options
            .target(DatabaseSource::Options)
            .map_err(|e| match e {
                BillingError::DatabaseUnsupported(reason) => {
                    BillingError::invalid_config(format!("{field}.url"), reason)
                }
                other => other,
            })?;
        Ok(options)
    }

    /// Reads a kavachOS host's `config.database`. Only its provider and url
    /// matter; other keys (`skipMigrations`, a D1 `binding`) belong to the host.
    pub fn from_host(value: &OptionValue) -> BillingResult<Self> {
        let OptionValue::Object(entries) = value else {
            return Err(BillingError::DatabaseUnsupported(
                "the kavachOS host has no `config.database`; give stripe() a `database: { provider, url }` option"
                    .into(),
            ));
        };
        let get = |name: &str| {
            entries
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
        };
        let provider_name = match get("provider") {
            Some(OptionValue::String(name)) => name.clone(),
            _ => {
                return Err(BillingError::DatabaseUnsupported(
                    "the kavachOS host's `config.database.provider` is missing; give stripe() a `database: { provider, url }` option"
                        .into(),
                ))
            }
        };
        if provider_name == "d1" {
            return Err(BillingError::DatabaseUnsupported(
                "the kavachOS host uses Cloudflare D1, which the native addon cannot reach; give stripe() its own `database: { provider, url }` (Postgres, MySQL or a SQLite file)".into(),
            ));
        }
        let provider = Provider::parse(&provider_name).ok_or_else(|| {
            BillingError::DatabaseUnsupported(format!(
                "the kavachOS host's database provider '{provider_name}' is not supported; use {PROVIDERS}, or give stripe() its own `database` option"
            ))
        })?;
        let url = match get("url") {
            Some(OptionValue::String(url)) => url.clone(),
            _ => {
                return Err(BillingError::DatabaseUnsupported(
                    "the kavachOS host's `config.database.url` is missing; give stripe() a `database: { provider, url }` option".into(),
                ))
            }
        };
        Ok(Self { provider, url })
    }

    /// Applies the sharing rules and parses the URL.
    pub fn target(&self, source: DatabaseSource) -> BillingResult<DatabaseTarget> {
        let url = self.url.trim();
        match self.provider {
            Provider::Postgres => {
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Ok(DatabaseTarget::Postgres { url: url.to_owned() })
                } else {
                    Err(BillingError::DatabaseUnsupported(
                        "a postgres url must start with postgres:// or postgresql://".into(),
                    ))
                }
            }
            Provider::Mysql => {
                if url.starts_with("mysql://") || url.starts_with("mariadb://") {
                    Ok(DatabaseTarget::Mysql {
                        url: url.replacen("mariadb://", "mysql://", 1),
                    })
                } else {
                    Err(BillingError::DatabaseUnsupported(
                        "a mysql url must start with mysql://".into(),
                    ))
                }
            }
            Provider::Sqlite if source == DatabaseSource::Host => {
                Err(BillingError::DatabaseUnsupported(
                    "the kavachOS host uses provider 'sqlite' (sql.js), which keeps the database in JavaScript memory and rewrites the file after each change, so the native side's writes would be lost. Use provider 'sqlite-native' in createKavach, or give stripe() its own `database: { provider, url }`".into(),
                ))
            }
            Provider::SqliteNative if source == DatabaseSource::Host && !super::sqlite_locks::SHARES_FILE_WITH_HOST_SAFELY => {
                Err(BillingError::DatabaseUnsupported(
                    "on this operating system the host's better-sqlite3 and this addon's SQLite cannot lock one file safely from the same process; give stripe() its own `database: { provider, url }`, or use Postgres or MySQL".into(),
                ))
            }
            Provider::Sqlite | Provider::SqliteNative => {
                let path = sqlite_path(url);
                if path.is_empty() {
                    return Err(BillingError::DatabaseUnsupported(
                        "a sqlite url must be a file path (or ':memory:')".into(),
                    ));
                }
                if path == ":memory:" {
                    if source == DatabaseSource::Host {
                        return Err(BillingError::DatabaseUnsupported(
                            "the kavachOS host's database is ':memory:', which no other connection can see. Put the host on a SQLite file with provider 'sqlite-native', or give stripe() its own `database: { provider, url }`".into(),
                        ));
                    }
                    return Ok(DatabaseTarget::SqliteMemory);
                }
                Ok(DatabaseTarget::SqliteFile {
                    path: path.to_owned(),
                })
            }
        }
    }
}

/// Accepts a plain path and the common `sqlite:`/`file:` spellings of one.
fn sqlite_path(url: &str) -> &str {
    let stripped = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .or_else(|| url.strip_prefix("file:"))
        .unwrap_or(url);
    stripped.split('?').next().unwrap_or(stripped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(provider: &str, url: &str) -> OptionValue {
        OptionValue::Object(vec![
            ("provider".into(), OptionValue::String(provider.into())),
            ("url".into(), OptionValue::String(url.into())),
        ])
    }

    #[test]
    fn options_accept_each_provider() {
        let pg =
            DatabaseOptions::from_option("database", &db("postgres", "postgres://u@h/db")).unwrap();
        assert_eq!(
            pg.target(DatabaseSource::Options).unwrap(),
            DatabaseTarget::Postgres {
                url: "postgres://u@h/db".into()
            }
        );
        let my =
            DatabaseOptions::from_option("database", &db("mysql", "mysql://root@h/db")).unwrap();
        assert!(matches!(
            my.target(DatabaseSource::Options).unwrap(),
            DatabaseTarget::Mysql { .. }
        ));
        let file =
            DatabaseOptions::from_option("database", &db("sqlite", "sqlite:./data.db")).unwrap();
        assert_eq!(
            file.target(DatabaseSource::Options).unwrap(),
            DatabaseTarget::SqliteFile {
                path: "./data.db".into()
            }
        );
        let mem = DatabaseOptions::from_option("database", &db("sqlite", ":memory:")).unwrap();
        assert_eq!(
            mem.target(DatabaseSource::Options).unwrap(),
            DatabaseTarget::SqliteMemory
        );
    }

    #[test]
    fn options_reject_bad_shapes_with_the_field_name() {
        let err = DatabaseOptions::from_option("database", &db("oracle", "x")).unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("database.provider"));
        let err =
            DatabaseOptions::from_option("database", &db("postgres", "mysql://x")).unwrap_err();
        assert!(err.to_string().contains("database.url"));
        let typo = OptionValue::Object(vec![
            ("provider".into(), OptionValue::String("postgres".into())),
            ("uri".into(), OptionValue::String("postgres://x".into())),
        ]);
        let err = DatabaseOptions::from_option("database", &typo).unwrap_err();
        assert!(err.to_string().contains("database.uri"));
    }

    #[test]
    fn host_sqljs_d1_and_memory_are_refused_with_the_fix() {
        let sqljs = DatabaseOptions::from_host(&db("sqlite", "./app.db")).unwrap();
        let err = sqljs.target(DatabaseSource::Host).unwrap_err();
        assert_eq!(err.code(), "database_unsupported");
        assert!(err.to_string().contains("sqlite-native"));

        let memory = DatabaseOptions::from_host(&db("sqlite-native", ":memory:")).unwrap();
        assert_eq!(
            memory.target(DatabaseSource::Host).unwrap_err().code(),
            "database_unsupported"
        );

        let d1 = OptionValue::Object(vec![
            ("provider".into(), OptionValue::String("d1".into())),
            ("binding".into(), OptionValue::Other("object")),
        ]);
        let err = DatabaseOptions::from_host(&d1).unwrap_err();
        assert!(err.to_string().contains("own `database"));

        let native = DatabaseOptions::from_host(&db("sqlite-native", "./app.db")).unwrap();
        assert_eq!(
            native.target(DatabaseSource::Host).unwrap(),
            DatabaseTarget::SqliteFile {
                path: "./app.db".into()
            }
        );
    }
}
