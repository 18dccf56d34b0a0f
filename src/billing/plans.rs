//! The app's plans (option `plans`): a name, a monthly and an optional annual
//! price, a trial and limits; and finding a stored price's plan again.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::is_stripe_id;
use crate::error::{BillingError, BillingResult};
use crate::option_value::OptionValue;

/// Longest plan name accepted; names are shown to users and sent back by clients.
const MAX_PLAN_NAME_CHARS: usize = 64;
const PLAN_FIELDS: &str = "name, priceId, annualPriceId, trialDays, limits";

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub price_id: String,
    pub annual_price_id: Option<String>,
    pub trial_days: Option<u32>,
    pub limits: BTreeMap<String, f64>,
}

/// A subscription's plan as apps see it: `plan: { name, limits, annual }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanView {
    pub name: String,
    pub limits: BTreeMap<String, f64>,
    pub annual: bool,
}

/// The plan whose monthly or annual price is `price_id`.
pub fn plan_for_price<'a>(plans: &'a [Plan], price_id: &str) -> Option<(&'a Plan, bool)> {
    plans.iter().find_map(|plan| {
        if plan.price_id == price_id {
            Some((plan, false))
        } else if plan.annual_price_id.as_deref() == Some(price_id) {
            Some((plan, true))
        } else {
            None
        }
    })
}

pub fn plan_view(plans: &[Plan], price_id: Option<&str>) -> Option<PlanView> {
    let (plan, annual) = plan_for_price(plans, price_id?)?;
    Some(PlanView {
        name: plan.name.clone(),
        limits: plan.limits.clone(),
        annual,
    })
}

pub fn plan_named<'a>(plans: &'a [Plan], name: &str) -> BillingResult<&'a Plan> {
    if plans.is_empty() {
        return Err(BillingError::invalid_argument(
            "plan",
            "cannot be used: no plans are configured (option `plans`)",
        ));
    }
    plans
        .iter()
        .find(|plan| plan.name == name)
        .ok_or_else(|| BillingError::invalid_argument("plan", "is not one of the configured plans"))
}

/// Every price of the plans, monthly then annual: the default of `prices`.
pub fn plan_prices(plans: &[Plan]) -> Vec<String> {
    plans
        .iter()
        .flat_map(|plan| std::iter::once(plan.price_id.clone()).chain(plan.annual_price_id.clone()))
        .collect()
}

fn invalid(field: String, reason: impl Into<String>) -> BillingError {
    BillingError::invalid_config(field, reason)
}

fn price_field(field: String, value: &OptionValue) -> BillingResult<String> {
    match value {
        OptionValue::String(id) if is_stripe_id(id) => Ok(id.clone()),
        OptionValue::String(_) => Err(invalid(
            field,
            "must be a Stripe price id (1 to 255 letters, digits, `_`, `-` or `.`)",
        )),
        other => Err(invalid(
            field,
            format!("must be a string, got {}", other.kind()),
        )),
    }
}

/// Parses and checks the `plans` option; `None` when it is absent.
pub fn parse_plans(value: &OptionValue) -> BillingResult<Option<Vec<Plan>>> {
    let entries = match value {
        OptionValue::Undefined => return Ok(None),
        OptionValue::Array(entries) if entries.is_empty() => {
            return Err(invalid(
                "plans".into(),
                "is an empty array; leave it out, or list at least one plan",
            ))
        }
        OptionValue::Array(entries) => entries,
        other => {
            return Err(invalid(
                "plans".into(),
                format!("must be an array of plans, got {}", other.kind()),
            ))
        }
    };
    let mut plans: Vec<Plan> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = |name: &str| format!("plans[{i}].{name}");
        let OptionValue::Object(fields) = entry else {
            return Err(invalid(
                format!("plans[{i}]"),
                format!(
                    "must be an object {{ {PLAN_FIELDS} }}, got {}",
                    entry.kind()
                ),
            ));
        };
        for (key, _) in fields {
            if !["name", "priceId", "annualPriceId", "trialDays", "limits"].contains(&key.as_str())
            {
                return Err(invalid(
                    format!("plans[{i}].{}", crate::error::echo(key)),
                    format!("is not a plan field ({PLAN_FIELDS})"),
                ));
            }
        }
        let get = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map_or(&OptionValue::Undefined, |(_, value)| value)
        };
        let name = match get("name") {
            OptionValue::String(name)
                if !name.trim().is_empty()
                    && name.chars().count() <= MAX_PLAN_NAME_CHARS
                    && !name.chars().any(char::is_control) =>
            {
                name.clone()
            }
            OptionValue::String(_) => {
                return Err(invalid(
                    at("name"),
                    format!("must be 1 to {MAX_PLAN_NAME_CHARS} characters, not blank, without control characters"),
                ))
            }
            OptionValue::Undefined => return Err(invalid(at("name"), "is required")),
            other => {
                return Err(invalid(
                    at("name"),
                    format!("must be a string, got {}", other.kind()),
                ))
            }
        };
        if let Some(j) = plans.iter().position(|p| p.name == name) {
            return Err(invalid(
                at("name"),
                format!("repeats the name of plans[{j}]; plan names must be unique"),
            ));
        }
        let price_id = match get("priceId") {
            OptionValue::Undefined => return Err(invalid(at("priceId"), "is required")),
            value => price_field(at("priceId"), value)?,
        };
        let annual_price_id = match get("annualPriceId") {
            OptionValue::Undefined => None,
            value => Some(price_field(at("annualPriceId"), value)?),
        };
        let own_prices = [Some(&price_id), annual_price_id.as_ref()];
        if annual_price_id.as_ref() == Some(&price_id) {
            return Err(invalid(
                at("annualPriceId"),
                "is the same as priceId; an annual price is a price of its own",
            ));
        }
        for (field, price) in [
            ("priceId", &own_prices[0]),
            ("annualPriceId", &own_prices[1]),
        ] {
            let Some(price) = price else { continue };
            if let Some((j, _)) = plans
                .iter()
                .enumerate()
                .find(|(_, p)| &p.price_id == *price || p.annual_price_id.as_ref() == Some(*price))
            {
                return Err(invalid(
                    at(field),
                    format!("is also a price of plans[{j}]; each price belongs to one plan"),
                ));
            }
        }
        let trial_days = match get("trialDays") {
            OptionValue::Undefined => None,
            OptionValue::Number(n) if n.fract() == 0.0 && (1.0..=730.0).contains(n) => {
                Some(*n as u32)
            }
            OptionValue::Number(_) => {
                return Err(invalid(
                    at("trialDays"),
                    "must be a whole number of days from 1 to 730 (Stripe's limit)",
                ))
            }
            other => {
                return Err(invalid(
                    at("trialDays"),
                    format!("must be a number, got {}", other.kind()),
                ))
            }
        };
        let limits = match get("limits") {
            OptionValue::Undefined => BTreeMap::new(),
            OptionValue::Object(limits) => limits
                .iter()
                .map(|(key, value)| match value {
                    OptionValue::Number(n) if n.is_finite() && !key.is_empty() => {
                        Ok((key.clone(), *n))
                    }
                    OptionValue::Number(_) if key.is_empty() => {
                        Err(invalid(at("limits"), "has an empty key"))
                    }
                    OptionValue::Number(_) => Err(invalid(
                        format!("plans[{i}].limits.{}", crate::error::echo(key)),
                        "must be a finite number",
                    )),
                    other => Err(invalid(
                        format!("plans[{i}].limits.{}", crate::error::echo(key)),
                        format!("must be a number, got {}", other.kind()),
                    )),
                })
                .collect::<BillingResult<_>>()?,
            other => {
                return Err(invalid(
                    at("limits"),
                    format!("must be an object of numbers, got {}", other.kind()),
                ))
            }
        };
        plans.push(Plan {
            name,
            price_id,
            annual_price_id,
            trial_days,
            limits,
        });
    }
    Ok(Some(plans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> OptionValue {
        OptionValue::String(text.into())
    }

    fn plan(fields: Vec<(&str, OptionValue)>) -> OptionValue {
        OptionValue::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn field_of(value: OptionValue) -> String {
        match parse_plans(&OptionValue::Array(vec![
            plan(vec![("name", s("basic")), ("priceId", s("price_basic"))]),
            value,
        ])) {
            Err(BillingError::InvalidConfig { field, .. }) => field,
            other => panic!("expected invalid_config, got {other:?}"),
        }
    }

    #[test]
    fn reads_plans_and_finds_them_by_price() {
        let plans = parse_plans(&OptionValue::Array(vec![
            plan(vec![("name", s("basic")), ("priceId", s("price_b"))]),
            plan(vec![
                ("name", s("pro")),
                ("priceId", s("price_p")),
                ("annualPriceId", s("price_p_year")),
                ("trialDays", OptionValue::Number(14.0)),
                (
                    "limits",
                    OptionValue::Object(vec![("projects".into(), OptionValue::Number(10.0))]),
                ),
            ]),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(plans[1].trial_days, Some(14));
        let view = plan_view(&plans, Some("price_p_year")).unwrap();
        assert_eq!((view.name.as_str(), view.annual), ("pro", true));
        assert_eq!(view.limits.get("projects"), Some(&10.0));
        assert!(!plan_view(&plans, Some("price_b")).unwrap().annual);
        assert_eq!(plan_view(&plans, Some("price_other")), None);
        assert_eq!(plan_prices(&plans), ["price_b", "price_p", "price_p_year"]);
        assert!(plan_named(&plans, "pro").is_ok());
        assert!(plan_named(&plans, "enterprise").is_err());
        assert!(plan_named(&[], "pro").is_err());
    }

    #[test]
    fn invalid_entries_name_their_field() {
        assert_eq!(
            field_of(plan(vec![("priceId", s("price_x"))])),
            "plans[1].name"
        );
        assert_eq!(
            field_of(plan(vec![("name", s("basic")), ("priceId", s("price_x"))])),
            "plans[1].name"
        );
        assert_eq!(field_of(plan(vec![("name", s("x"))])), "plans[1].priceId");
        assert_eq!(
            field_of(plan(vec![("name", s("x")), ("priceId", s("price basic"))])),
            "plans[1].priceId"
        );
        assert_eq!(
            field_of(plan(vec![("name", s("x")), ("priceId", s("price_basic"))])),
            "plans[1].priceId"
        );
        assert_eq!(
            field_of(plan(vec![
                ("name", s("x")),
                ("priceId", s("price_x")),
                ("annualPriceId", s("price_x"))
            ])),
            "plans[1].annualPriceId"
        );
        assert_eq!(
            field_of(plan(vec![
                ("name", s("x")),
                ("priceId", s("price_x")),
                ("trialDays", OptionValue::Number(0.5))
            ])),
            "plans[1].trialDays"
        );
        assert_eq!(
            field_of(plan(vec![
                ("name", s("x")),
                ("priceId", s("price_x")),
                (
                    "limits",
                    OptionValue::Object(vec![("seats".into(), s("ten"))])
                )
            ])),
            "plans[1].limits.seats"
        );
        assert_eq!(
            field_of(plan(vec![
                ("name", s("x")),
                ("priceId", s("price_x")),
                ("seats", OptionValue::Number(3.0))
            ])),
            "plans[1].seats"
        );
        assert_eq!(field_of(s("pro")), "plans[1]");
        assert!(parse_plans(&OptionValue::Array(vec![])).is_err());
        assert_eq!(parse_plans(&OptionValue::Undefined).unwrap(), None);
    }
}
