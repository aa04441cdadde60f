//! What the pages (`web`), the service API (`api`) and the error answers share about a
//! request: who sends it, which answer it wants, and how a value goes into a URL.

use crate::audit::Origin;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use std::net::IpAddr;

/// The caller's address: the peer's, unless the peer is one of `TRUSTED_PROXIES`; then
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends
/// the address it saw; entries further left come from the client and may be forged).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = match req.app_data::<web::Data<AppState>>() {
        Some(state) if state.config.trusted_proxies.contains(&peer) => {
            &state.config.trusted_proxies
        }
        _ => return Some(peer),
    };
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    Some(forwarded_client(peer, &forwarded, trusted))
}

/// The right-most forwarded address that is not a trusted proxy; the last trusted hop
/// when an entry does not parse (nothing left of it can be believed) or all are trusted.
fn forwarded_client(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// The caller's address (`client_ip`) and browser, for the audit log.
pub fn origin(req: &HttpRequest) -> Origin {
    Origin {
        ip: client_ip(req).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Whether the request comes from htmx (it then gets a fragment, not a page).
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("hx-request")
}

/// htmx asks for a fragment, except when it restores history and needs the whole page.
pub fn wants_fragment(req: &HttpRequest) -> bool {
    is_htmx(req) && !req.headers().contains_key("hx-history-restore-request")
}

/// Whether the caller sends or accepts JSON (it then gets JSON, errors included).
pub fn wants_json(req: &HttpRequest) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    header(header::CONTENT_TYPE).starts_with("application/json")
        || header(header::ACCEPT).starts_with("application/json")
}

pub fn urlencode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_right_most_untrusted_forwarded_address_is_the_caller() {
        let proxies = [ip("127.0.0.1"), ip("10.0.0.5")];
        let peer = ip("127.0.0.1");
        // A forged entry on the left is passed over.
        let seen = forwarded_client(peer, &["6.6.6.6", " 203.0.113.7", "10.0.0.5"], &proxies);
        assert_eq!(seen, ip("203.0.113.7"));
        assert_eq!(forwarded_client(peer, &[], &proxies), peer);
        assert_eq!(
            forwarded_client(peer, &["10.0.0.5"], &proxies),
            ip("10.0.0.5")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            forwarded_client(peer, &["203.0.113.7", "junk"], &proxies),
            peer
        );
        assert_eq!(
            forwarded_client(peer, &["2001:db8::1"], &proxies),
            ip("2001:db8::1")
        );
    }
}
