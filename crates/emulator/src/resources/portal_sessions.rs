//! `/v1/billing_portal/sessions`: create. The portal itself is the session's `url`.

use serde_json::{json, Value};

use super::Call;
use crate::billing::customer_param;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

pub fn create(store: &mut Store, call: &Call<'_>) -> ApiResult<Value> {
    let p = call.params;
    let customer = p.required_str("customer")?;
    let return_url = p.str("return_url")?.filter(|s| !s.is_empty());
    let locale = p.str("locale")?.filter(|s| !s.is_empty());
    p.finish(&["configuration", "flow_data", "on_behalf_of"])?;
    customer_param(store, &customer, "customer")?;
    if let Some(url) = &return_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::invalid_with_code(
                "url_invalid",
                "Not a valid URL",
                Some("return_url".into()),
            ));
        }
    }
    let id = crate::ids::new_id("bps");
    let session = json!({
        "id": id,
        "object": "billing_portal.session",
        "configuration": "bpc_emulator_default",
        "created": store.now(),
        "customer": customer,
        "flow": null,
        "livemode": false,
        "locale": locale,
        "on_behalf_of": null,
        "return_url": return_url,
        "url": format!("{}/portal/{id}", store.base_url),
    });
    store.portal_sessions.insert(session.clone());
    store.emit(
        "billing_portal.session.created",
        &session,
        None,
        &call.cause,
    );
    Ok(session)
}
