//! Stripe's list objects: `{object: "list", data, has_more, url}`, newest
//! first, paged with `limit` (1-100, default 10) and `starting_after` or
//! `ending_before` (an object id).

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;

pub struct Page {
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

impl Page {
    pub fn read(params: &Params) -> ApiResult<Self> {
        let limit =
            match params.int("limit")? {
                None => 10,
                Some(limit @ 1..=100) => limit as usize,
                Some(_) => return Err(ApiError::invalid_value(
                    "limit",
                    "This value must be greater than or equal to 1 and less than or equal to 100.",
                )),
            };
        let starting_after = params.str("starting_after")?.filter(|s| !s.is_empty());
        let ending_before = params.str("ending_before")?.filter(|s| !s.is_empty());
        if starting_after.is_some() && ending_before.is_some() {
            return Err(ApiError::invalid_request(
                "You may only specify one of these parameters: starting_after, ending_before.",
                Some("ending_before".into()),
            ));
        }
        Ok(Self {
            limit,
            starting_after,
            ending_before,
        })
    }

    /// One page of `newest_first` (already filtered), as a list object.
    pub fn list(&self, newest_first: Vec<Value>, object: &str, url: &str) -> ApiResult<Value> {
        let position = |cursor: &str, param: &str| {
            newest_first
                .iter()
                .position(|o| o["id"] == cursor)
                .ok_or_else(|| ApiError::no_such_param(object, cursor, param))
        };
        let (data, has_more) = if let Some(cursor) = &self.starting_after {
            let after = position(cursor, "starting_after")? + 1;
            let rest = &newest_first[after..];
            let taken = rest.len().min(self.limit);
            (rest[..taken].to_vec(), rest.len() > taken)
        } else if let Some(cursor) = &self.ending_before {
            let before = position(cursor, "ending_before")?;
            let rest = &newest_first[..before];
            let from = rest.len().saturating_sub(self.limit);
            (rest[from..].to_vec(), from > 0)
        } else {
            let taken = newest_first.len().min(self.limit);
            (newest_first[..taken].to_vec(), newest_first.len() > taken)
        };
        Ok(json!({
            "object": "list",
            "data": data,
            "has_more": has_more,
            "url": url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::parse_form;

    fn ids(list: &Value) -> Vec<i64> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["n"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn pages_both_ways() {
        let all: Vec<Value> = (0..5)
            .rev()
            .map(|n| json!({"id": format!("x_{n}"), "n": n}))
            .collect();
        let page = |q: &str| {
            let params = Params::new(parse_form(q).unwrap());
            Page::read(&params)
                .unwrap()
                .list(all.clone(), "thing", "/v1/things")
                .unwrap()
        };
        let first = page("limit=2");
        assert_eq!(
            (ids(&first), first["has_more"].clone()),
            (vec![4, 3], json!(true))
        );
        let next = page("limit=2&starting_after=x_3");
        assert_eq!(ids(&next), vec![2, 1]);
        let last = page("limit=2&starting_after=x_1");
        assert_eq!(
            (ids(&last), last["has_more"].clone()),
            (vec![0], json!(false))
        );
        let back = page("limit=2&ending_before=x_1");
        assert_eq!(
            (ids(&back), back["has_more"].clone()),
            (vec![3, 2], json!(true))
        );
        let params = Params::new(parse_form("starting_after=x_9").unwrap());
        let error = Page::read(&params)
            .unwrap()
            .list(all, "thing", "/")
            .unwrap_err();
        assert_eq!(error.message, "No such thing: 'x_9'");
        let params = Params::new(parse_form("limit=0").unwrap());
        assert!(Page::read(&params).is_err());
    }
}
