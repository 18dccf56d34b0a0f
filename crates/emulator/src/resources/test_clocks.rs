//! `/v1/test_helpers/test_clocks`: create, retrieve, list, delete, advance.
//! The emulator has one clock: every test clock shows it, and advancing one
//! advances them all (and every object, attached or not).

use serde_json::{json, Value};

use super::Call;
use crate::billing::periods::period_end;
use crate::billing::subscription_object::{has_ended, items_of};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::list::Page;
use crate::store::{Cause, Store};

/// A `frozen_time` this far behind the emulator's clock is taken as now
/// (a client computing "now" a moment ago).
const SLACK_SECONDS: i64 = 300;

fn existing(store: &Store, id: &str) -> ApiResult<Value> {
    store
        .test_clocks
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("test_helpers.test_clock", id))
}

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let frozen_time = p
        .int("frozen_time")?
        .ok_or_else(|| ApiError::parameter_missing("frozen_time"))?;
    let name = p.str("name")?.filter(|s| !s.is_empty());
    p.finish(&["customer"])?;
    let now = store.now();
    if frozen_time < now - SLACK_SECONDS {
        return Err(ApiError::invalid_value(
            "frozen_time",
            format!("The emulator has one clock, shared by every test clock, and it only moves forward: frozen_time must not be before its current time ({now})."),
        ));
    }
    // A clock starting in the future moves the one clock there.
    crate::billing::schedule::run_until(store, frozen_time);
    let now = store.now();
    let clock = json!({
        "id": new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + 30 * 86_400,
        "frozen_time": now,
        "livemode": false,
        "name": name,
        "status": "ready",
        "status_details": {},
    });
    store.test_clocks.insert(clock.clone());
    store.emit("test_helpers.test_clock.created", &clock, None, &call.cause);
    Ok(clock)
}

/// Every clock shows the emulator's time.
pub fn showing_now(store: &Store, clock: &Value) -> Value {
    let mut shown = clock.clone();
    if shown["status"] == "ready" {
        shown["frozen_time"] = json!(store.now());
    }
    shown
}

pub fn retrieve(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    let clock = existing(store, call.id())?;
    Ok(showing_now(store, &clock))
}

pub fn list(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let page = Page::read(call.params)?;
    call.params.finish(&[])?;
    let all: Vec<Value> = store
        .test_clocks
        .newest_first()
        .map(|c| showing_now(store, c))
        .collect();
    page.list(all, "test_helpers.test_clock", call.path)
}

/// Deleting a clock deletes the customers attached to it (and so cancels
/// their subscriptions).
pub fn delete(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    call.params.finish(&[])?;
    let clock = existing(store, call.id())?;
    let attached: Vec<String> = store
        .customers
        .oldest_first()
        .filter(|c| c["test_clock"] == call.id() && c["deleted"] != true)
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    for customer in attached {
        super::customers::delete_customer(store, &customer, &call.cause)?;
    }
    store.test_clocks.remove(call.id());
    store.emit("test_helpers.test_clock.deleted", &clock, None, &call.cause);
    Ok(json!({"id": call.id(), "object": "test_helpers.test_clock", "deleted": true}))
}

/// The furthest one advance may go: two intervals of the shortest
/// subscription on the clock's customers, or two years.
fn advance_limit(store: &Store, clock: &str, now: i64) -> i64 {
    let customers: Vec<&str> = store
        .customers
        .oldest_first()
        .filter(|c| c["test_clock"] == clock)
        .filter_map(|c| c["id"].as_str())
        .collect();
    store
        .subscriptions
        .oldest_first()
        .filter(|s| !has_ended(s) && customers.iter().any(|c| s["customer"] == *c))
        .flat_map(|s| items_of(s).into_iter())
        .map(|item| {
            let once = period_end(now, &item["price"]["recurring"]);
            period_end(once, &item["price"]["recurring"])
        })
        .min()
        .unwrap_or(now + 2 * 365 * 86_400)
}

/// `POST .../advance`: answers at once with status `advancing`; the clock
/// moves after the answer, then the status is `ready` again.
pub fn advance(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let target = p
        .int("frozen_time")?
        .ok_or_else(|| ApiError::parameter_missing("frozen_time"))?;
    p.finish(&[])?;
    let mut clock = existing(store, call.id())?;
    if clock["status"] == "advancing" {
        return Err(ApiError::state_conflict(
            "The test clock is already advancing.",
        ));
    }
    let now = store.now();
    if target <= now {
        return Err(ApiError::invalid_value(
            "frozen_time",
            format!("frozen_time must be later than the test clock's current time ({now}); all test clocks share the emulator's one clock."),
        ));
    }
    if target > advance_limit(store, call.id(), now) {
        return Err(ApiError::invalid_value(
            "frozen_time",
            "Cannot advance the test clock more than two intervals of the shortest subscription on it (two years without subscriptions).",
        ));
    }
    clock["status"] = json!("advancing");
    clock["frozen_time"] = json!(now);
    store.test_clocks.insert(clock.clone());
    store.emit(
        "test_helpers.test_clock.advancing",
        &clock,
        None,
        &call.cause,
    );
    store.clock_advances.push((call.id().to_owned(), target));
    Ok(clock)
}

/// Runs an advance asked for with `advance`: everything due up to the
/// target, then the clock is `ready` (`test_helpers.test_clock.ready`).
pub fn finish_advance(store: &mut Store, clock_id: &str, target: i64) {
    crate::billing::schedule::run_until(store, target);
    let Some(mut clock) = store.test_clocks.get(clock_id).cloned() else {
        return;
    };
    clock["status"] = json!("ready");
    clock["frozen_time"] = json!(store.now());
    store.test_clocks.insert(clock.clone());
    store.emit(
        "test_helpers.test_clock.ready",
        &clock,
        None,
        &Cause::default(),
    );
}
