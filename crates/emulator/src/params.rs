//! Reading a request's parameters by name. Every parameter a handler reads is
//! marked; `finish` then refuses whatever nobody read, by its bracketed name,
//! the way Stripe answers `parameter_unknown`. Handlers read everything, call
//! `finish`, and only then change state, so a refused request changes nothing.

use std::cell::{Cell, RefCell};

use crate::error::{ApiError, ApiResult};
use crate::form::{bracketed, FormPair};

pub struct Params {
    pairs: Vec<FormPair>,
    read: RefCell<Vec<Vec<String>>>,
    finished: Cell<bool>,
}

fn split(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (head, rest) = name.split_once('[').unwrap_or((name, ""));
    out.push(head.to_owned());
    if !rest.is_empty() {
        for part in format!("[{rest}").split('[').skip(1) {
            out.push(part.trim_end_matches(']').to_owned());
        }
    }
    out
}

impl Params {
    pub fn new(pairs: Vec<FormPair>) -> Self {
        Self {
            pairs,
            read: RefCell::new(Vec::new()),
            finished: Cell::new(false),
        }
    }

    pub fn pairs(&self) -> &[FormPair] {
        &self.pairs
    }

    /// Whether `finish` has passed: errors after it happened while executing.
    pub fn executed(&self) -> bool {
        self.finished.get()
    }

    fn mark(&self, path: Vec<String>) {
        self.read.borrow_mut().push(path);
    }

    fn leaf(&self, path: &[String]) -> Option<&str> {
        self.pairs
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.value.as_str())
    }

    /// Whether anything at or under `name` was sent.
    pub fn has(&self, name: &str) -> bool {
        let path = split(name);
        self.pairs.iter().any(|p| p.path.starts_with(&path))
    }

    pub fn str(&self, name: &str) -> ApiResult<Option<String>> {
        let path = split(name);
        if self
            .pairs
            .iter()
            .any(|p| p.path.len() > path.len() && p.path.starts_with(&path))
        {
            return Err(ApiError::invalid_value(
                name,
                format!("Invalid string: {name} must be a string, not a hash or a list"),
            ));
        }
        let value = self.leaf(&path).map(str::to_owned);
        self.mark(path);
        Ok(value)
    }

    pub fn required_str(&self, name: &str) -> ApiResult<String> {
        match self.str(name)? {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::parameter_missing(name)),
        }
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.str(name)? {
            None => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid_integer(name, &text)),
        }
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.str(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid_value(
                name,
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    /// A flat `name[key]=value` hash such as `metadata`; `None` when not sent,
    /// `Some(empty)` for `metadata=` (which unsets everything).
    pub fn map(&self, name: &str) -> ApiResult<Option<Vec<(String, String)>>> {
        let path = split(name);
        self.mark(path.clone());
        let mut entries = Vec::new();
        let mut seen = false;
        for pair in self.pairs.iter().filter(|p| p.path.starts_with(&path)) {
            seen = true;
            match pair.path.len() - path.len() {
                0 if pair.value.is_empty() => {}
                1 => entries.push((pair.path[path.len()].clone(), pair.value.clone())),
                _ => {
                    return Err(ApiError::invalid_value(
                        name,
                        format!("Invalid hash: {name} takes string keys and string values"),
                    ))
                }
            }
        }
        Ok(seen.then_some(entries))
    }

    /// The indexes sent under a list parameter (`items[0]`, `items[1]`...), as
    /// the names of their entries, in index order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let path = split(name);
        let mut indexes: Vec<usize> = self
            .pairs
            .iter()
            .filter(|p| p.path.len() > path.len() && p.path.starts_with(&path))
            .filter_map(|p| p.path[path.len()].parse().ok())
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
            .into_iter()
            .map(|i| format!("{name}[{i}]"))
            .collect()
    }

    /// A list of strings (`expand[]`, `types[]`, `enabled_events[]`).
    pub fn strings(&self, name: &str) -> ApiResult<Vec<String>> {
        let mut values = Vec::new();
        for entry in self.list(name) {
            if let Some(value) = self.str(&entry)? {
                values.push(value);
            }
        }
        self.mark(split(name));
        Ok(values)
    }

    /// Refuses the first parameter nobody read; parameters in `not_emulated`
    /// are ones Stripe accepts that the emulator does not model.
    pub fn finish(&self, not_emulated: &[&str]) -> ApiResult<()> {
        let read = self.read.borrow();
        for pair in &self.pairs {
            if read.iter().any(|r| pair.path.starts_with(r)) {
                continue;
            }
            for depth in 1..=pair.path.len() {
                let prefix = &pair.path[..depth];
                if !read.iter().any(|r| r.starts_with(prefix)) {
                    let name = bracketed(prefix);
                    if not_emulated.contains(&any_index(prefix).as_str()) {
                        return Err(ApiError::parameter_not_emulated(&name));
                    }
                    return Err(ApiError::parameter_unknown(&name));
                }
            }
        }
        self.finished.set(true);
        Ok(())
    }
}

/// `items[0][price_data]` -> `items[*][price_data]`, for lists of names.
fn any_index(path: &[String]) -> String {
    let general: Vec<String> = path
        .iter()
        .map(|s| {
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                "*".to_owned()
            } else {
                s.clone()
            }
        })
        .collect();
    bracketed(&general)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::parse_form;

    fn params(encoded: &str) -> Params {
        Params::new(parse_form(encoded).unwrap())
    }

    #[test]
    fn unread_parameters_are_refused_by_name() {
        let p = params("email=a@b.c&items[0][price]=p&items[0][price_data][product]=x");
        p.str("email").unwrap();
        p.str("items[0][price]").unwrap();
        let error = p.finish(&[]).unwrap_err();
        assert_eq!(error.code.as_deref(), Some("parameter_unknown"));
        assert_eq!(error.param.as_deref(), Some("items[0][price_data]"));
        assert_eq!(
            error.message,
            "Received unknown parameter: items[0][price_data]"
        );
    }

    #[test]
    fn a_whole_unknown_hash_is_named_at_its_top() {
        let p = params("foo[bar]=1");
        assert_eq!(p.finish(&[]).unwrap_err().param.as_deref(), Some("foo"));
        let p = params("trial_end=now");
        let error = p.finish(&["trial_end"]).unwrap_err();
        assert!(error.message.contains("does not implement"));
    }

    #[test]
    fn typed_reads() {
        let p = params("n=12&b=true&bad=x&metadata[k]=v&expand[]=a&expand[]=b");
        assert_eq!(p.int("n").unwrap(), Some(12));
        assert_eq!(p.bool("b").unwrap(), Some(true));
        assert_eq!(
            p.int("bad").unwrap_err().code.as_deref(),
            Some("parameter_invalid_integer")
        );
        assert_eq!(
            p.map("metadata").unwrap(),
            Some(vec![("k".into(), "v".into())])
        );
        assert_eq!(p.strings("expand").unwrap(), vec!["a", "b"]);
        assert!(p.finish(&[]).is_ok());
        assert_eq!(
            p.required_str("missing").unwrap_err().message,
            "Missing required param: missing."
        );
    }
}
