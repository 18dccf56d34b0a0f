//! JSON request bodies of the authenticated endpoints, read field by field so
//! that every error names the field.

use serde_json::{Map, Value};

use crate::error::BillingError;

pub fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, BillingError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BillingError::invalid_argument(
            "body",
            "must be a JSON object",
        )),
        Err(_) => Err(BillingError::InvalidJson),
    }
}

/// Takes fields out of a body; whatever is left afterwards is unknown.
pub struct BodyFields {
    fields: Map<String, Value>,
}

impl BodyFields {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self { fields }
    }

    /// A present field; `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name).filter(|v| !v.is_null())
    }

    pub fn required_string(&mut self, name: &str) -> Result<String, BillingError> {
        match self.take(name) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(Value::String(_)) => {
                Err(BillingError::invalid_argument(name, "must not be empty"))
            }
            Some(_) => Err(BillingError::invalid_argument(name, "must be a string")),
            None => Err(BillingError::invalid_argument(name, "is required")),
        }
    }

    pub fn optional_string(&mut self, name: &str) -> Result<Option<String>, BillingError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(BillingError::invalid_argument(name, "must be a string")),
        }
    }

    pub fn optional_integer(&mut self, name: &str) -> Result<Option<i64>, BillingError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| BillingError::invalid_argument(name, "must be a whole number")),
            Some(_) => Err(BillingError::invalid_argument(name, "must be a number")),
        }
    }

    pub fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, BillingError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(flag)),
            Some(_) => Err(BillingError::invalid_argument(
                name,
                "must be true or false",
            )),
        }
    }

    pub fn optional_object(
        &mut self,
        name: &str,
    ) -> Result<Option<Map<String, Value>>, BillingError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(BillingError::invalid_argument(name, "must be an object")),
        }
    }

    pub fn reject_unknown(self) -> Result<(), BillingError> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(key) => Err(BillingError::invalid_argument(
                key.chars().take(64).collect::<String>(),
                "is not a known field",
            )),
        }
    }
}
