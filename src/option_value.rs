//! A JavaScript value as the options parser sees it: JSON-like data plus the
//! kinds JSON cannot hold (functions, `undefined`). The binding builds it from the
//! JS object; everything that decides about it is pure Rust.

#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<OptionValue>),
    /// Keys in the order JavaScript lists them.
    Object(Vec<(String, OptionValue)>),
    Function,
    /// Anything else (symbol, bigint, ...), by its `typeof` name.
    Other(&'static str),
}

impl OptionValue {
    /// A short description for error messages; never the value itself,
    /// which may be a secret.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Undefined => "undefined",
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
            Self::Function => "a function",
            Self::Other(name) => name,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Undefined)
    }
}
