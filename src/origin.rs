//! Web origins (`scheme://host[:port]`), for `baseUrl`, `trustedOrigins` and the
//! redirect-URL checks of the authenticated endpoints.

use reqwest::Url;

/// Parses an absolute `http:` or `https:` URL; anything else is `None`.
pub fn parse_http_url(input: &str) -> Option<Url> {
    let url = Url::parse(input).ok()?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Some(url),
        _ => None,
    }
}

/// The serialized origin of an http(s) URL, e.g. `https://app.example:8443`.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Parses a string that must be a bare origin: no path beyond `/`, no query,
/// no fragment, no credentials. Returns its canonical form.
pub fn parse_origin(input: &str) -> Result<String, &'static str> {
    let url = parse_http_url(input).ok_or("must be an absolute http(s) URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(
            "must be an origin only (scheme, host and port), without a path, query or fragment",
        );
    }
    Ok(origin_of(&url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_origins() {
        assert_eq!(
            parse_origin("https://App.Example/").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            parse_origin("https://a.example:443").unwrap(),
            "https://a.example"
        );
    }

    #[test]
    fn rejects_non_origins() {
        assert!(parse_origin("https://a.example/path").is_err());
        assert!(parse_origin("https://a.example/?q=1").is_err());
        assert!(parse_origin("ftp://a.example").is_err());
        assert!(parse_origin("javascript:alert(1)").is_err());
        assert!(parse_origin("/relative").is_err());
        assert!(parse_origin("https://user:pw@a.example").is_err());
    }
}
