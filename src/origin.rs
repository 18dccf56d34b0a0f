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

/// Whether a URL's host is loopback: an IP in 127.0.0.0/8, `::1`, or the
/// name `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    fn loopback_hosts() {
        for url in [
            "http://localhost:1",
            "http://LOCALHOST/",
            "http://127.0.0.1:12111",
            "http://127.9.8.7/",
            "http://[::1]:8080/",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://example.com",
            "http://api.stripe.com",
            "http://128.0.0.1",
            "http://[::2]/",
            "http://localhost.example.com",
            "http://stripe-mock:12111",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
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
