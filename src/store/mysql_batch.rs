//! One batch on MySQL/MariaDB: one transaction, the batch's users and then its
//! subscriptions locked up front in id order (so concurrent batches cannot
//! deadlock on them), each event inside its own savepoint, one commit. The
//! steps are the SQLite writer's (`MYSQL_WRITER`), a round trip each.

use sqlx::mysql::MySqlConnection;
use sqlx::{Executor, Row};

use super::dialect::{mysql_lock_subscriptions, mysql_lock_users, WriterSql, MYSQL_WRITER};
use super::event_write::{
    plan_event, EventPlan, LedgerRecord, SubscriptionEventWrite, WriteOutcome,
};
use super::server_writer::{is_transient, BatchFailure};
use crate::error::{BillingError, BillingResult};

/// MySQL's duplicate-key error: another delivery recorded the event meanwhile.
const DUPLICATE_KEY: &str = "1062";

pub(super) async fn apply(
    connection: &mut MySqlConnection,
    writes: &[&SubscriptionEventWrite],
) -> Result<Vec<BillingResult<WriteOutcome>>, BatchFailure> {
    let sql = &MYSQL_WRITER;
    connection.execute(sql.begin).await?;
    let result = apply_in_transaction(connection, sql, writes).await;
    match result {
        Ok(results) => match connection.execute(sql.commit).await {
            Ok(_) => Ok(results),
            Err(error) => Err(error.into()),
        },
        Err(failure) => {
            // The caller closes the connection whatever happens here.
            let _ = connection.execute(sql.rollback).await;
            Err(failure)
        }
    }
}

async fn apply_in_transaction(
    connection: &mut MySqlConnection,
    sql: &'static WriterSql,
    writes: &[&SubscriptionEventWrite],
) -> Result<Vec<BillingResult<WriteOutcome>>, BatchFailure> {
    lock_rows(connection, writes).await?;
    if let Some(before) = writes.iter().find_map(|write| write.prune_before) {
        // Pruning never fails the batch; its own savepoint undoes it alone.
        connection.execute(sql.savepoint).await?;
        let pruned = sqlx::query(sql.prune_events)
            .bind(before)
            .execute(&mut *connection)
            .await;
        match pruned {
            Err(error) if is_transaction_level(&error) => return Err(error.into()),
            Err(_) => {
                connection.execute(sql.rollback_to_savepoint).await?;
            }
            Ok(_) => {}
        }
        connection.execute(sql.release_savepoint).await?;
    }
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        connection.execute(sql.savepoint).await?;
        let result = match apply_event(connection, sql, write).await {
            Ok(outcome) => Ok(outcome),
            Err(error) if is_transaction_level(&error) => return Err(error.into()),
            Err(error) => {
                connection.execute(sql.rollback_to_savepoint).await?;
                if error_code(&error).as_deref() == Some(DUPLICATE_KEY) {
                    Ok(WriteOutcome::Declined)
                } else {
                    Err(BillingError::from(error))
                }
            }
        };
        connection.execute(sql.release_savepoint).await?;
        results.push(result);
    }
    Ok(results)
}

/// Errors after which the transaction cannot go on (a deadlock rolls back
/// all of it; a lost connection takes it along): the batch is retried.
fn is_transaction_level(error: &sqlx::Error) -> bool {
    is_transient(error)
}

fn error_code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    }
}

/// Locks the users owning the batch's customers, then the batch's stored
/// subscriptions, each in id order.
async fn lock_rows(
    connection: &mut MySqlConnection,
    writes: &[&SubscriptionEventWrite],
) -> Result<(), sqlx::Error> {
    let mut customers: Vec<&str> = writes
        .iter()
        .map(|w| w.snapshot.customer_id.as_str())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    let statement = mysql_lock_users(customers.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.as_str()));
    for customer in &customers {
        query = query.bind(*customer);
    }
    query.fetch_all(&mut *connection).await?;

    let mut subscriptions: Vec<&str> = writes.iter().map(|w| w.snapshot.id.as_str()).collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    let statement = mysql_lock_subscriptions(subscriptions.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.as_str()));
    for subscription in &subscriptions {
        query = query.bind(*subscription);
    }
    query.fetch_all(&mut *connection).await?;
    Ok(())
}

async fn apply_event(
    connection: &mut MySqlConnection,
    sql: &'static WriterSql,
    write: &SubscriptionEventWrite,
) -> Result<WriteOutcome, sqlx::Error> {
    let snapshot = &write.snapshot;
    let context = sqlx::query(sql.read_event_context)
        .bind(&snapshot.customer_id)
        .bind(&write.event_id)
        .bind(&snapshot.id)
        .fetch_one(&mut *connection)
        .await?;
    let owner: Option<String> = context.try_get(0)?;
    let ledger_state: Option<String> = context.try_get(1)?;
    let last_event_created: Option<i64> = context.try_get(2)?;
    let user_id = match plan_event(write, owner, ledger_state.as_deref(), last_event_created) {
        EventPlan::Duplicate => return Ok(WriteOutcome::Duplicate),
        EventPlan::Declined => return Ok(WriteOutcome::Declined),
        EventPlan::RecordStale => {
            record_event(connection, sql, write, &LedgerRecord::stale()).await?;
            return Ok(WriteOutcome::Applied { changed_user: None });
        }
        EventPlan::Apply { user_id } => user_id,
    };
    let main = snapshot.main_item();
    let items = serde_json::to_string(&snapshot.items)
        .map_err(|e| sqlx::Error::Encode(format!("cannot encode items: {e}").into()))?;
    sqlx::query(sql.upsert_subscription)
        .bind(&snapshot.id)
        .bind(&snapshot.customer_id)
        .bind(&user_id)
        .bind(&snapshot.status)
        .bind(items)
        .bind(main.and_then(|i| i.price.as_deref()))
        .bind(main.and_then(|i| i.current_period_end))
        .bind(snapshot.cancel_at_period_end)
        .bind(snapshot.cancel_at)
        .bind(snapshot.trial_end)
        .bind(snapshot.created)
        .bind(write.event_created)
        .execute(&mut *connection)
        .await?;
    // Rows matched (the driver asks for found rows), and the statement only
    // matches a row whose projection differs.
    let changed = sqlx::query(sql.write_projection)
        .bind(&user_id)
        .bind(&user_id)
        .execute(&mut *connection)
        .await?
        .rows_affected()
        > 0;
    let changed_user = changed.then_some(user_id);
    record_event(
        connection,
        sql,
        write,
        &LedgerRecord::applied(write, changed_user.as_deref()),
    )
    .await?;
    Ok(WriteOutcome::Applied { changed_user })
}

async fn record_event(
    connection: &mut MySqlConnection,
    sql: &'static WriterSql,
    write: &SubscriptionEventWrite,
    record: &LedgerRecord<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql.record_event)
        .bind(&write.event_id)
        .bind(&write.event_type)
        .bind(write.event_created)
        .bind(record.state.as_str())
        .bind(record.detail)
        .bind(record.notify_user_id)
        .bind(record.lease_column(write.received_at))
        .bind(write.received_at)
        .bind(write.received_at)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
