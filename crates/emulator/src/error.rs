//! Errors as Stripe writes them: `{"error": {type, code, message, param, ...}}`
//! with the HTTP status Stripe uses for each.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, code: Option<&str>, message: String) -> Self {
        Self {
            status,
            kind,
            code: code.map(str::to_owned),
            decline_code: None,
            message,
            param: None,
        }
    }

    fn with_param(mut self, param: Option<String>) -> Self {
        self.param = param;
        self
    }

    pub fn invalid_request(message: impl Into<String>, param: Option<String>) -> Self {
        Self::new(400, "invalid_request_error", None, message.into()).with_param(param)
    }

    pub fn invalid_with_code(
        code: &str,
        message: impl Into<String>,
        param: Option<String>,
    ) -> Self {
        Self::new(400, "invalid_request_error", Some(code), message.into()).with_param(param)
    }

    pub fn parameter_unknown(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_unknown"),
            format!("Received unknown parameter: {param}"),
        )
        .with_param(Some(param.to_owned()))
    }

    /// A parameter Stripe has but this emulator does not model: refused, never ignored.
    pub fn parameter_not_emulated(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_unknown"),
            format!(
                "Received unknown parameter: {param}. Stripe accepts it, but the kavachos-stripe emulator does not implement it."
            ),
        )
        .with_param(Some(param.to_owned()))
    }

    pub fn parameter_missing(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            format!("Missing required param: {param}."),
        )
        .with_param(Some(param.to_owned()))
    }

    pub fn invalid_integer(param: &str, value: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            format!("Invalid integer: {value}"),
        )
        .with_param(Some(param.to_owned()))
    }

    pub fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", None, message.into())
            .with_param(Some(param.to_owned()))
    }

    /// An id in the URL names nothing: 404, `param: "id"`.
    pub fn no_such(object: &str, id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such {object}: '{id}'"),
        )
        .with_param(Some("id".to_owned()))
    }

    /// An id in the body names nothing: 400 with the parameter's name.
    pub fn no_such_param(object: &str, id: &str, param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such {object}: '{id}'"),
        )
        .with_param(Some(param.to_owned()))
    }

    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            None,
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
        )
    }

    pub fn no_api_key() -> Self {
        Self::new(
            401,
            "invalid_request_error",
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.".to_owned(),
        )
    }

    pub fn invalid_api_key(shown: &str) -> Self {
        Self::new(
            401,
            "invalid_request_error",
            None,
            format!("Invalid API Key provided: {shown}"),
        )
    }

    pub fn idempotency_mismatch(key: &str) -> Self {
        Self::new(
            400,
            "idempotency_error",
            None,
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
        )
    }

    pub fn card_declined(decline_code: &str, message: &str) -> Self {
        let mut error = Self::new(402, "card_error", Some("card_declined"), message.to_owned());
        error.decline_code = Some(decline_code.to_owned());
        error
    }

    pub fn card_error(code: &str, message: &str) -> Self {
        Self::new(402, "card_error", Some(code), message.to_owned())
    }

    pub fn state_conflict(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", None, message.into())
    }

    pub fn to_json(&self, request_id: &str) -> Value {
        let mut error = json!({
            "type": self.kind,
            "message": self.message,
            "request_log_url": format!("https://dashboard.stripe.com/test/logs/{request_id}"),
        });
        if let Some(code) = &self.code {
            error["code"] = json!(code);
            error["doc_url"] = json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ));
        }
        if let Some(decline) = &self.decline_code {
            error["decline_code"] = json!(decline);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Failures of the emulator itself (its options, its socket), not of a request.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("invalid emulator option `{option}`: {message}")]
    InvalidOption { option: String, message: String },
    #[error("cannot use the state file: {0}")]
    State(String),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl EmulatorError {
    pub fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            option: option.into(),
            message: message.into(),
        }
    }
}
