//! The differential test: the ordering and projection rules exist in Rust
//! (`events::decide`, `events::project`, used by the general path and the
//! SQLite and MySQL writers) and in SQL (the writers' projection statements
//! and Postgres's batch function). The same random event sequences
//! (duplicates, reversals, same-second ties, deletions, several
//! subscriptions per user, an unlinked customer) go through every path on
//! every database, and the stored rows, the ledger and the per-event outcomes
//! (who is owed a notification) must be identical.
//!
//! Postgres and MySQL come from `KAVACH_TEST_POSTGRES_URL` and
//! `KAVACH_TEST_MYSQL_URL` (defaults as the Node suites'); the test uses a database of its own on each,
//! `kavach_stripe_differential` (on Postgres created anew, with an ICU
//! collation that orders text unlike bytes). Under `CI=true` both
//! are required; elsewhere one that does not answer is skipped with a message.

use std::sync::mpsc;

use kavachos_stripe::events::{SubscriptionItem, SubscriptionSnapshot};
use kavachos_stripe::store::{
    ApplyOutcome, Claim, DatabaseTarget, Store, SubscriptionChange, SubscriptionEventWrite,
    SubscriptionWrite, WriteOutcome,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqlx::Row;

const DATABASE: &str = "kavach_stripe_differential";
const USERS: [(&str, &str); 3] = [("u1", "cus_1"), ("u2", "cus_2"), ("u3", "cus_3")];
/// A customer no user is linked to: the writers decline, the general path
/// would ask Stripe.
const UNLINKED_CUSTOMER: &str = "cus_unlinked";
/// Ids whose byte order differs from a case-insensitive order ("sub_B" <
/// "sub_a" as bytes), so a tie on `created` is broken the same everywhere.
const SUBSCRIPTIONS: [(&str, usize); 5] = [
    ("sub_a", 0),
    ("sub_B", 0),
    ("sub_c", 1),
    ("sub_D", 1),
    ("sub_e", 3),
];
const STATUSES: [&str; 7] = [
    "active",
    "trialing",
    "past_due",
    "canceled",
    "incomplete_expired",
    "unpaid",
    // Not a live status: compared as bytes, never case-insensitively.
    "Active",
];
const RECEIVED_AT: i64 = 1_700_000_000;
const LEASE_UNTIL: i64 = RECEIVED_AT + 60;

#[derive(Debug, Clone)]
struct Step {
    /// Some(i): deliver step i's event again instead of a new one.
    repeat: Option<usize>,
    subscription: usize,
    status: usize,
    deleted: bool,
    created: i64,
    event_created: i64,
    price: usize,
    period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
}

fn steps() -> impl Strategy<Value = (Vec<Step>, bool)> {
    let step = (
        prop::option::weighted(0.2, 0usize..24),
        0usize..SUBSCRIPTIONS.len(),
        0usize..STATUSES.len(),
        prop::bool::weighted(0.15),
        0i64..3,
        0i64..8,
        0usize..3,
        prop::option::of(0i64..3),
        any::<bool>(),
        prop::option::weighted(0.2, 0i64..3),
    )
        .prop_map(
            |(
                repeat,
                subscription,
                status,
                deleted,
                created,
                event_created,
                price,
                period_end,
                cancel_at_period_end,
                cancel_at,
            )| Step {
                repeat,
                subscription,
                status,
                deleted,
                created,
                event_created,
                price,
                period_end,
                cancel_at_period_end,
                cancel_at,
            },
        );
    (prop::collection::vec(step, 1..24), any::<bool>())
}

/// The events a sequence of steps delivers, in order.
fn events(steps: &[Step], notify: bool) -> Vec<SubscriptionEventWrite> {
    let mut events: Vec<SubscriptionEventWrite> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        if let Some(earlier) = step.repeat.filter(|&i| i < events.len()) {
            events.push(events[earlier].clone());
            continue;
        }
        let (id, customer) = SUBSCRIPTIONS[step.subscription];
        let customer_id = USERS
            .get(customer)
            .map_or(UNLINKED_CUSTOMER, |(_, customer)| customer);
        events.push(SubscriptionEventWrite {
            event_id: format!("evt_{index}"),
            event_type: if step.deleted {
                "customer.subscription.deleted"
            } else {
                "customer.subscription.updated"
            }
            .into(),
            event_created: 100 + step.event_created,
            snapshot: SubscriptionSnapshot {
                id: id.into(),
                customer_id: customer_id.into(),
                status: if step.deleted {
                    "canceled"
                } else {
                    STATUSES[step.status]
                }
                .into(),
                items: vec![SubscriptionItem {
                    id: Some(format!("si_{id}")),
                    price: Some(format!("price_{}", step.price)),
                    product: Some(format!("prod_{}", step.price)),
                    quantity: Some(1 + step.price as i64),
                    current_period_end: step.period_end.map(|p| 2_000_000_000 + p),
                }],
                cancel_at_period_end: step.cancel_at_period_end,
                cancel_at: step.cancel_at.map(|c| 2_000_000_000 + c),
                trial_start: step.period_end.map(|p| 1_900_000_000 + p),
                trial_end: step.period_end.map(|p| 1_950_000_000 + p),
                ended_at: step.deleted.then_some(2_100_000_000 + step.event_created),
                created: 50 + step.created,
                metadata_user_id: None,
            },
            notify_lease_until: notify.then_some(LEASE_UNTIL),
            received_at: RECEIVED_AT,
            prune_before: None,
        });
    }
    events
}

/// What one path did with an event, comparable across paths.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Applied { changed_user: Option<String> },
    Duplicate,
    Declined,
}

/// Everything compared: outcomes, subscription rows, user projections, ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    outcomes: Vec<Outcome>,
    subscriptions: Vec<Vec<Option<String>>>,
    users: Vec<Vec<Option<String>>>,
    ledger: Vec<Vec<Option<String>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// One database, reached by the store under test and by an independent pool
/// that resets and reads it.
struct Database {
    kind: Kind,
    store: Store,
    raw: Raw,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
}

impl Raw {
    async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
            Raw::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
            Raw::Mysql(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        }
        .expect("raw statement");
    }

    /// Every column read as text (NULL stays None), booleans as 0/1.
    async fn rows(&self, sql: &str, columns: usize) -> Vec<Vec<Option<String>>> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let read = |row: Vec<Option<String>>| {
            row.into_iter()
                .map(|value| {
                    value.map(|v| match v.as_str() {
                        "true" | "t" => "1".to_owned(),
                        "false" | "f" => "0".to_owned(),
                        _ => v,
                    })
                })
                .collect::<Vec<_>>()
        };
        macro_rules! fetch {
            ($pool:expr) => {
                sqlx::query(sql)
                    .fetch_all($pool)
                    .await
                    .expect("raw read")
                    .iter()
                    .map(|row| {
                        read(
                            (0..columns)
                                .map(|i| row.try_get::<Option<String>, _>(i).expect("text"))
                                .collect(),
                        )
                    })
                    .collect()
            };
        }
        match self {
            Raw::Sqlite(pool) => fetch!(pool),
            Raw::Postgres(pool) => fetch!(pool),
            Raw::Mysql(pool) => fetch!(pool),
        }
    }
}

impl Database {
    fn text(&self, column: &str) -> String {
        match self.kind {
            Kind::Mysql => format!("CAST({column} AS CHAR)"),
            Kind::Sqlite | Kind::Postgres => format!("CAST({column} AS TEXT)"),
        }
    }

    fn epoch(&self, column: &str) -> String {
        match self.kind {
            Kind::Sqlite => format!("CAST({column} AS TEXT)"),
            Kind::Postgres => format!("CAST(CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT) AS TEXT)"),
            Kind::Mysql => format!("CAST(CAST(UNIX_TIMESTAMP({column}) AS SIGNED) AS CHAR)"),
        }
    }

    async fn reset(&self) {
        for table in [
            "kavach_stripe_subscriptions",
            "kavach_stripe_events",
            "kavach_users",
        ] {
            self.raw.execute(&format!("DELETE FROM {table}")).await;
        }
        for (user, customer) in USERS {
            self.store
                .upsert_user(user, &format!("{user}@example.com"), None)
                .await
                .expect("user");
            assert!(self
                .store
                .link_customer(user, customer)
                .await
                .expect("link"));
        }
    }

    async fn observe(&self, outcomes: Vec<Outcome>) -> Observed {
        let t = |c: &str| self.text(c);
        let subscriptions = format!(
            "SELECT {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM kavach_stripe_subscriptions ORDER BY id",
            t("id"), t("customer_id"), t("user_id"), t("status"), t("items"), t("price_id"),
            t("current_period_end"), t("cancel_at_period_end"), t("cancel_at"), t("trial_end"),
            t("created"), t("last_event_created"), t("product_id"), t("quantity"),
            t("trial_start"), t("ended_at"),
        );
        let users = format!(
            "SELECT {}, {}, {}, {}, {}, {}, {} FROM kavach_users ORDER BY id",
            t("id"),
            t("stripe_customer_id"),
            t("stripe_subscription_id"),
            t("stripe_subscription_status"),
            t("stripe_price_id"),
            self.epoch("stripe_current_period_end"),
            t("stripe_cancel_at_period_end"),
        );
        let ledger = format!(
            "SELECT {}, {}, {}, {}, {}, {} FROM kavach_stripe_events ORDER BY id",
            t("id"),
            t("type"),
            t("created"),
            t("state"),
            t("detail"),
            t("notify_user_id"),
        );
        let mut subscriptions = self.raw.rows(&subscriptions, 12).await;
        let mut users = self.raw.rows(&users, 7).await;
        let mut ledger = self.raw.rows(&ledger, 6).await;
        // Each database orders text its own way; compare as bytes.
        subscriptions.sort();
        users.sort();
        ledger.sort();
        Observed {
            outcomes,
            subscriptions,
            users,
            ledger,
        }
    }

    /// The batch writer: every event submitted at once, so they share batches.
    async fn through_writer(&self, events: &[SubscriptionEventWrite]) -> Vec<Outcome> {
        let (sender, receiver) = mpsc::channel();
        for (index, event) in events.iter().enumerate() {
            let sender = sender.clone();
            self.store.batch_writer().submit(
                event.clone(),
                Box::new(move |result| {
                    let _ = sender.send((index, result));
                }),
            );
        }
        drop(sender);
        let answers = tokio::task::spawn_blocking(move || receiver.iter().collect::<Vec<_>>())
            .await
            .expect("answers");
        let mut answers = answers;
        answers.sort_by_key(|(index, _)| *index);
        assert_eq!(answers.len(), events.len(), "every event is answered");
        answers
            .into_iter()
            .map(|(_, result)| match result.expect("the writer answers") {
                WriteOutcome::Applied { changed_user } => Outcome::Applied { changed_user },
                WriteOutcome::Duplicate => Outcome::Duplicate,
                WriteOutcome::Declined => Outcome::Declined,
            })
            .collect()
    }

    /// The general path's steps (claim, resolve the owner, apply in one
    /// transaction with Rust's rules), one event at a time, stopping where
    /// it would ask Stripe.
    async fn through_general_path(&self, events: &[SubscriptionEventWrite]) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for event in events {
            let claim = self
                .store
                .claim_event(
                    &event.event_id,
                    &event.event_type,
                    event.event_created,
                    RECEIVED_AT,
                    60,
                )
                .await
                .expect("claim");
            match claim {
                Claim::Claimed => {}
                Claim::Finished => {
                    outcomes.push(Outcome::Duplicate);
                    continue;
                }
                Claim::Notify { .. } | Claim::InProgress => {
                    outcomes.push(Outcome::Declined);
                    continue;
                }
            }
            let owner = self
                .store
                .user_by_customer(&event.snapshot.customer_id)
                .await
                .expect("owner");
            let Some(owner) = owner else {
                self.store
                    .release_event(&event.event_id)
                    .await
                    .expect("release");
                outcomes.push(Outcome::Declined);
                continue;
            };
            let write = SubscriptionWrite {
                event_id: &event.event_id,
                event_created: event.event_created,
                user_id: Some(&owner),
                change: SubscriptionChange::Snapshot {
                    snapshot: event.snapshot.clone(),
                    fetched: None,
                },
                notify: event.notify_lease_until.is_some(),
            };
            match self.store.apply_subscription(&write).await.expect("apply") {
                ApplyOutcome::Applied { changed_user } => {
                    outcomes.push(Outcome::Applied { changed_user })
                }
                ApplyOutcome::Stale => outcomes.push(Outcome::Applied { changed_user: None }),
                ApplyOutcome::NeedsRefetch => {
                    self.store
                        .release_event(&event.event_id)
                        .await
                        .expect("release");
                    outcomes.push(Outcome::Declined);
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        outcomes
    }
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/kavach_stripe_test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/kavach_stripe_test";

/// The server's URL from `variable` (else the default), when it answers.
/// Under `CI=true` a server that does not answer fails the test.
async fn server_url(variable: &str, default: &str) -> Option<String> {
    let url = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    let reachable = if url.starts_with("mysql:") {
        sqlx::MySqlPool::connect(&url).await.map(|_| ()).err()
    } else {
        sqlx::PgPool::connect(&url).await.map(|_| ()).err()
    };
    match reachable {
        None => Some(url),
        Some(error) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true: {variable} ({url}) must be reachable: {error}")
        }
        Some(_) => None,
    }
}

/// The server URL with the test's own database in place of the one named.
fn with_database(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{base}/{DATABASE}?{query}"),
        None => format!("{base}/{DATABASE}"),
    }
}

/// A server database with the package's tables dropped, then migrated anew.
async fn open_server(kind: Kind, raw: Raw, target: DatabaseTarget) -> Database {
    raw.execute(
        "DROP TABLE IF EXISTS kavach_stripe_subscriptions, kavach_stripe_events, \
         kavach_stripe_checkout_sessions, kavach_stripe_customer_claims, \
         kavach_stripe_trial_grants, kavach_stripe_invoices, kavach_stripe_event_deliveries, \
         kavach_stripe_schema, \
         kavach_users",
    )
    .await;
    let store = Store::connect(&target).await.expect("store");
    store.migrate().await.expect("migrate");
    Database { kind, store, raw }
}

async fn open_databases(dir: &std::path::Path) -> Vec<Database> {
    let mut databases = Vec::new();

    let file = dir.join("differential.db").to_string_lossy().into_owned();
    let store = Store::connect(&DatabaseTarget::SqliteFile { path: file.clone() })
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate sqlite");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{file}"))
        .await
        .expect("sqlite reader");
    databases.push(Database {
        kind: Kind::Sqlite,
        store,
        raw: Raw::Sqlite(raw),
    });

    match server_url("KAVACH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL).await {
        Some(url) => {
            let admin = sqlx::PgPool::connect(&url).await.expect("postgres");
            // A linguistic (ICU) collation, where "sub_a" < "sub_B": the
            // projection must still break ties by bytes, as Rust does.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
            )))
            .execute(&admin)
            .await
            .expect("drop the postgres database");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'"
            )))
            .execute(&admin)
            .await
            .expect("create the postgres database");
            admin.close().await;
            let url = with_database(&url);
            let raw = Raw::Postgres(sqlx::PgPool::connect(&url).await.expect("postgres"));
            let target = DatabaseTarget::Postgres { url };
            databases.push(open_server(Kind::Postgres, raw, target).await);
        }
        None => eprintln!("differential: Postgres skipped (unreachable)"),
    }

    match server_url("KAVACH_TEST_MYSQL_URL", DEFAULT_MYSQL_URL).await {
        Some(url) => {
            let admin = sqlx::MySqlPool::connect(&url).await.expect("mysql");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS {DATABASE}"
            )))
            .execute(&admin)
            .await
            .expect("create the mysql database");
            admin.close().await;
            let url = with_database(&url);
            let raw = Raw::Mysql(sqlx::MySqlPool::connect(&url).await.expect("mysql"));
            let target = DatabaseTarget::Mysql { url };
            databases.push(open_server(Kind::Mysql, raw, target).await);
        }
        None => eprintln!("differential: MySQL skipped (unreachable)"),
    }
    databases
}

#[test]
fn every_path_on_every_database_stores_the_same() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("kavach-differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let databases = runtime.block_on(open_databases(&dir));

    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&steps(), |(steps, notify)| {
        let events = events(&steps, notify);
        let mut reference: Option<(String, Observed)> = None;
        for database in &databases {
            for general in [false, true] {
                let observed = runtime.block_on(async {
                    database.reset().await;
                    let outcomes = if general {
                        database.through_general_path(&events).await
                    } else {
                        database.through_writer(&events).await
                    };
                    database.observe(outcomes).await
                });
                let label = format!(
                    "{:?} {}",
                    database.kind,
                    if general { "general path" } else { "writer" }
                );
                match &reference {
                    None => reference = Some((label, observed)),
                    Some((first, expected)) => {
                        prop_assert_eq!(expected, &observed, "{} differs from {}", label, first)
                    }
                }
            }
        }
        Ok(())
    });
    runtime.block_on(async {
        for database in &databases {
            database.store.close().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(error) = result {
        panic!("{error}");
    }
}
