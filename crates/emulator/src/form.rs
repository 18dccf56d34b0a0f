//! Stripe's form encoding: `a[b][0][c]=v` pairs, percent-encoded, `+` for a
//! space, `[]` appending to a list. Query strings use the same encoding.

use std::collections::HashMap;

use crate::error::ApiError;

/// One decoded parameter: its bracketed path split into segments, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPair {
    pub path: Vec<String>,
    pub value: String,
}

/// Decodes a form body or query string. A `[]` segment becomes the next free
/// index under its parent, so `expand[]=a&expand[]=b` reads like
/// `expand[0]=a&expand[1]=b`.
pub fn parse_form(encoded: &str) -> Result<Vec<FormPair>, ApiError> {
    let mut pairs: Vec<FormPair> = Vec::new();
    // Where each path sits in `pairs` (a repeated key replaces the value),
    // and the next free index under each parent, for `[]`.
    let mut position: HashMap<Vec<String>, usize> = HashMap::new();
    let mut next_index: HashMap<Vec<String>, usize> = HashMap::new();
    for part in encoded.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(raw_key)?;
        let value = percent_decode(raw_value)?;
        let mut path = split_key(&key)?;
        for depth in 1..path.len() {
            let parent = path[..depth].to_vec();
            let next = next_index.entry(parent).or_insert(0);
            if path[depth].is_empty() {
                path[depth] = next.to_string();
                *next += 1;
            } else if let Ok(index) = path[depth].parse::<usize>() {
                *next = (*next).max(index.saturating_add(1));
            }
        }
        match position.get(&path) {
            Some(&at) => pairs[at].value = value,
            None => {
                position.insert(path.clone(), pairs.len());
                pairs.push(FormPair { path, value });
            }
        }
    }
    Ok(pairs)
}

/// `a[b][]` -> `["a", "b", ""]`.
fn split_key(key: &str) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::invalid_request(format!("Invalid parameter name: {key}"), None);
    let (head, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(invalid());
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(invalid)?;
        let close = inner.find(']').ok_or_else(invalid)?;
        path.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    Ok(path)
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::invalid_request("Invalid percent-encoding in the request", None)
                    })?;
                out.push(hex);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::invalid_request("The request is not valid UTF-8", None))
}

/// `["items", "0", "price"]` -> `items[0][price]`, the way Stripe names a parameter.
pub fn bracketed(path: &[String]) -> String {
    let mut name = path.first().cloned().unwrap_or_default();
    for segment in &path[1.min(path.len())..] {
        name.push('[');
        name.push_str(segment);
        name.push(']');
    }
    name
}

/// The fingerprint idempotency compares: the decoded pairs, order-independent.
pub fn fingerprint(pairs: &[FormPair]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|p| (bracketed(&p.path), p.value.clone()))
        .collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(encoded: &str) -> Vec<(String, String)> {
        parse_form(encoded)
            .unwrap()
            .into_iter()
            .map(|p| (bracketed(&p.path), p.value))
            .collect()
    }

    #[test]
    fn nested_indexed_and_appended_keys() {
        assert_eq!(
            paths("items%5B0%5D%5Bprice%5D=price_1&metadata[a+b]=x%20y&expand[]=c&expand[]=d"),
            vec![
                ("items[0][price]".into(), "price_1".into()),
                ("metadata[a b]".into(), "x y".into()),
                ("expand[0]".into(), "c".into()),
                ("expand[1]".into(), "d".into()),
            ]
        );
    }

    #[test]
    fn empty_value_and_repeated_key() {
        assert_eq!(
            paths("cancel_at=&email=a&email=b"),
            vec![
                ("cancel_at".into(), "".into()),
                ("email".into(), "b".into())
            ]
        );
    }

    #[test]
    fn many_appended_keys() {
        let body = "a[]=1&".repeat(100_000);
        assert_eq!(parse_form(&body).unwrap().len(), 100_000);
    }

    #[test]
    fn malformed_keys_and_encoding_are_refused() {
        assert!(parse_form("a[b=1").is_err());
        assert!(parse_form("[x]=1").is_err());
        assert!(parse_form("a=%zz").is_err());
        assert!(parse_form("a=%ff").is_err());
    }
}
