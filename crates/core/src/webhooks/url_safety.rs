//! Where webhooks may go: http(s) only, and not to private, loopback or link-local
//! addresses unless `WEBHOOK_ALLOW_PRIVATE=true`. Literal addresses are checked when the
//! URL is saved and before each delivery; names are checked by the delivery client's
//! resolver on every connection (so a name that later resolves inside is refused too).

use std::net::{IpAddr, SocketAddr};
use url::Url;

pub const URL_MAX_CHARS: usize = 2000;

/// Parses an endpoint URL, with the reason when it cannot be one.
pub fn parse(raw: &str, allow_private: bool) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the URL is required".into());
    }
    if raw.chars().count() > URL_MAX_CHARS || raw.chars().any(char::is_control) {
        return Err(format!(
            "the URL must be one line of at most {URL_MAX_CHARS} characters"
        ));
    }
    let url = Url::parse(raw).map_err(|_| "the URL is not a valid http(s) URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the URL must start with http:// or https://".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry a user name or password".into());
    }
    check_host(&url, allow_private)?;
    Ok(url)
}

/// Refuses a literal private address or `localhost` unless private ones are allowed.
pub fn check_host(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let refused = match url.host() {
        None => return Err("the URL has no host".into()),
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if refused {
        return Err("the URL points at a private, loopback or link-local address".into());
    }
    Ok(())
}

/// Private (RFC 1918, unique-local), loopback, link-local, unspecified, CGNAT or
/// broadcast: addresses a webhook must not reach from the outside's point of view.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The delivery client's resolver: the system's, with private answers dropped when they
/// are not allowed.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|addr| !is_private(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the name resolves only to private addresses".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_urls_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://localhost:8080/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(parse(url, false).is_err(), "{url}");
            assert!(parse(url, true).is_ok(), "{url}");
        }
        assert!(parse("https://hooks.example.com/in", false).is_ok());
        assert!(parse("ftp://example.com/", true).is_err());
        assert!(parse("https://user:pw@example.com/", true).is_err());
        assert!(parse("https://example.com/\u{0}", true).is_err());
    }
}
