//! `kavachos-stripe migrate`: the package's migrations, for deploy pipelines.

use crate::error::BillingResult;
use crate::store::migrate::UsersTable;
use crate::store::{DatabaseOptions, DatabaseSource, Store};

/// What a migration left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub from_version: i64,
    pub schema_version: i64,
}

/// Migrates `database`. Without `standalone`, `kavach_users` must already
/// exist (a kavachOS app's host creates it with its own columns).
pub async fn migrate_database(
    database: &DatabaseOptions,
    standalone: bool,
) -> BillingResult<MigrationReport> {
    let target = database.target(DatabaseSource::Options)?;
    let store = Store::connect(&target).await?;
    let result = async {
        let from_version = store.schema_version().await?;
        let users = if standalone {
            UsersTable::CreateIfMissing
        } else {
            UsersTable::MustExist
        };
        store.migrate_with(users).await?;
        Ok(MigrationReport {
            from_version,
            schema_version: store.schema_version().await?,
        })
    }
    .await;
    store.close().await;
    result
}
