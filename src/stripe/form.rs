//! `application/x-www-form-urlencoded` bodies the way Stripe reads them:
//! nested objects as `a[b][c]=v`, arrays indexed as `a[0][b]=v`.

/// An ordered list of form fields. Keys are written with their brackets
/// (`line_items[0][price]`); values are escaped on encoding.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FormBody {
    fields: Vec<(String, String)>,
}

impl FormBody {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// `prefix[key]=value` for each entry, e.g. metadata.
    pub fn push_map<'a>(
        &mut self,
        prefix: &str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        for (key, value) in entries {
            self.fields
                .push((format!("{prefix}[{key}]"), value.to_owned()));
        }
        self
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            encode_component(key, true, &mut out);
            out.push('=');
            encode_component(value, false, &mut out);
        }
        out
    }
}

/// Percent-encodes UTF-8; keeps unreserved characters, and in keys the
/// brackets Stripe parses structurally (values escape them).
fn encode_component(text: &str, is_key: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'[' | b']' if is_key => out.push(byte as char),
            _ => {
                out.push('%');
                out.push(HEX[(byte >> 4) as usize] as char);
                out.push(HEX[(byte & 0x0f) as usize] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_and_escaping() {
        let mut form = FormBody::new();
        form.push("mode", "subscription")
            .push("line_items[0][price]", "price_1")
            .push(
                "success_url",
                "https://a.example/ok?session={CHECKOUT_SESSION_ID}&x=1",
            )
            .push_map("metadata", [("note", "a b&c=d/é")]);
        assert_eq!(
            form.encode(),
            "mode=subscription&line_items[0][price]=price_1\
             &success_url=https%3A%2F%2Fa.example%2Fok%3Fsession%3D%7BCHECKOUT_SESSION_ID%7D%26x%3D1\
             &metadata[note]=a%20b%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn empty_value_is_kept_to_unset() {
        let mut form = FormBody::new();
        form.push("metadata[k]", "");
        assert_eq!(form.encode(), "metadata[k]=");
    }
}
