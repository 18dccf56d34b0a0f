//! `expand[]`: replaces ids at the named paths (`latest_invoice`,
//! `data.customer`, `latest_invoice.customer`) with the objects they name.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use crate::version::{render, ApiVersion};

pub fn expand(
    store: &Store,
    value: &mut Value,
    paths: &[String],
    version: &ApiVersion,
) -> ApiResult<()> {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        expand_at(store, value, &segments, version, path)?;
    }
    Ok(())
}

fn expand_at(
    store: &Store,
    value: &mut Value,
    segments: &[&str],
    version: &ApiVersion,
    path: &str,
) -> ApiResult<()> {
    let cannot = || {
        ApiError::invalid_request(
            format!("This property cannot be expanded ({path})."),
            Some("expand".into()),
        )
    };
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if let Value::Array(items) = value {
        for item in items {
            expand_at(store, item, segments, version, path)?;
        }
        return Ok(());
    }
    let field = value.get_mut(*first).ok_or_else(cannot)?;
    if *first == "data" && field.is_array() {
        return expand_at(store, field, rest, version, path);
    }
    if let Some(id) = field.as_str() {
        let found = store.find_any(id).ok_or_else(cannot)?;
        *field = render(found, version);
    } else if !field.is_object() && !field.is_null() {
        return Err(cannot());
    }
    if !rest.is_empty() && field.is_object() {
        expand_at(store, field, rest, version, path)?;
    }
    Ok(())
}
