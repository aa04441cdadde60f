//! One provider's authorization codes, access tokens and refresh tokens.
//!
//! Every code exchange or client-credentials grant starts a token *family*. Refresh tokens
//! rotate within their family; presenting a rotated or revoked refresh token (or reusing a
//! code) revokes the whole family, since it means a token leaked (RFC 6749 §4.1.2, OAuth
//! 2.0 Security BCP §4.14).

use super::http::{random_b64, random_hex_id, s256, secure_eq};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Authorization codes live a minute, as providers commonly allow.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Spent codes are remembered this long to detect reuse.
const SPENT_CODE_MEMORY: Duration = Duration::from_secs(600);
/// Dead access tokens are swept once the table grows past this.
const SWEEP_THRESHOLD: usize = 1024;
/// Longest access-token lifetime honoured, so `Instant + ttl` can never overflow.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// What "never expires" means in the sandbox: longer than any test or demo runs.
const PERMANENT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What a token stands for.
#[derive(Clone, Debug)]
pub struct Grant {
    pub client_id: String,
    pub account: String,
    pub scopes: Vec<String>,
}

impl Grant {
    pub fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

struct AuthCode {
    grant: Grant,
    redirect_uri: String,
    challenge: String,
    expires_at: Instant,
}

struct AccessToken {
    grant: Grant,
    /// A public id for the token (Kustomer's tokens/current reports it).
    id: String,
    family: u64,
    issued_at: SystemTime,
    expires_at: Instant,
    revoked: bool,
}

impl AccessToken {
    fn is_live(&self, now: Instant) -> bool {
        !self.revoked && now < self.expires_at
    }
}

#[derive(PartialEq)]
enum RefreshStatus {
    Active,
    Rotated,
    Revoked,
}

struct RefreshToken {
    grant: Grant,
    family: u64,
    status: RefreshStatus,
}

/// A newly issued token pair.
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
}

/// A live access token as the APIs see it.
pub struct AccessInfo {
    pub id: String,
    pub grant: Grant,
}

/// Why a grant was refused; all map to `invalid_grant` except `InvalidScope`.
#[derive(Debug, PartialEq)]
pub enum GrantError {
    InvalidGrant(&'static str),
    InvalidScope,
}

/// What introspection reports about a token.
pub struct Introspection {
    pub grant: Grant,
    pub token_type: &'static str,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
}

pub struct TokenStore {
    prefix: &'static str,
    ttl: Duration,
    codes: HashMap<String, AuthCode>,
    /// code → (when it was spent, the family issued from it, if any)
    spent_codes: HashMap<String, (Instant, Option<u64>)>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    next_family: u64,
    /// The access table is swept of dead tokens when it grows past this; then it is set to
    /// twice what is left, so with many live tokens a sweep stays rare (amortised O(1)).
    sweep_at: usize,
    /// Successful refreshes per family (grant), and rotated refresh tokens presented again.
    refreshes: HashMap<u64, u32>,
    reused: u64,
}

/// How often grants were refreshed (`TokenStore::refresh_counts`).
#[derive(serde::Serialize)]
pub struct RefreshCounts {
    pub grants_refreshed: usize,
    pub refreshes: u64,
    pub most_refreshes_of_one_grant: u32,
    pub reused_refresh_tokens: u64,
}

impl TokenStore {
    pub fn new(prefix: &'static str, ttl: Duration) -> Self {
        Self {
            prefix,
            ttl: ttl.min(MAX_TTL),
            codes: HashMap::new(),
            spent_codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_family: 1,
            sweep_at: SWEEP_THRESHOLD,
            refreshes: HashMap::new(),
            reused: 0,
        }
    }

    /// The `expires_in` of token responses: the lifetime rounded up to whole seconds.
    pub fn expires_in(&self) -> u64 {
        whole_seconds(self.ttl)
    }

    pub fn create_code(&mut self, grant: Grant, redirect_uri: &str, challenge: &str) -> String {
        let now = Instant::now();
        self.codes.retain(|_, c| c.expires_at > now);
        self.spent_codes
            .retain(|_, (at, _)| now.duration_since(*at) < SPENT_CODE_MEMORY);
        let code = random_b64(32);
        self.codes.insert(
            code.clone(),
            AuthCode {
                grant,
                redirect_uri: redirect_uri.to_string(),
                challenge: challenge.to_string(),
                expires_at: now + CODE_LIFETIME,
            },
        );
        code
    }

    /// Exchanges a code. A code is spent by its first presentation, even a failed one, so
    /// a stolen code cannot be used to guess the verifier.
    pub fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Issued, GrantError> {
        let now = Instant::now();
        let Some(entry) = self.codes.remove(code) else {
            if let Some((_, family)) = self.spent_codes.get(code) {
                if let Some(family) = *family {
                    self.revoke_family(family);
                }
                return Err(GrantError::InvalidGrant(
                    "Authorization code has already been used",
                ));
            }
            return Err(GrantError::InvalidGrant("Invalid authorization code"));
        };
        self.spent_codes.insert(code.to_string(), (now, None));
        if entry.expires_at <= now {
            return Err(GrantError::InvalidGrant("Authorization code has expired"));
        }
        if entry.grant.client_id != client_id {
            return Err(GrantError::InvalidGrant(
                "Authorization code was issued to another client",
            ));
        }
        if entry.redirect_uri != redirect_uri {
            return Err(GrantError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if !valid_verifier(verifier) || !secure_eq(&s256(verifier), &entry.challenge) {
            return Err(GrantError::InvalidGrant("Invalid code verifier"));
        }
        let family = self.new_family();
        self.spent_codes
            .insert(code.to_string(), (now, Some(family)));
        Ok(self.issue(entry.grant, family, true))
    }

    /// Rotates a refresh token: the presented one stops working and a new pair is issued.
    pub fn refresh(
        &mut self,
        token: &str,
        client_id: &str,
        requested_scopes: Option<Vec<String>>,
    ) -> Result<Issued, GrantError> {
        let Some(entry) = self.refresh.get(token) else {
            return Err(GrantError::InvalidGrant("Invalid refresh token"));
        };
        if entry.grant.client_id != client_id {
            return Err(GrantError::InvalidGrant(
                "Refresh token was issued to another client",
            ));
        }
        let family = entry.family;
        if entry.status != RefreshStatus::Active {
            // A rotated or revoked token came back: someone holds a copy. Kill the family.
            self.reused += 1;
            self.revoke_family(family);
            return Err(GrantError::InvalidGrant(
                "Refresh token has been revoked or already used",
            ));
        }
        let mut grant = entry.grant.clone();
        if let Some(requested) = requested_scopes {
            // A refresh may narrow the scope but never widen it (RFC 6749 §6).
            if requested.iter().any(|s| !grant.scopes.contains(s)) {
                return Err(GrantError::InvalidScope);
            }
            grant.scopes = requested;
        }
        if let Some(entry) = self.refresh.get_mut(token) {
            entry.status = RefreshStatus::Rotated;
        }
        *self.refreshes.entry(family).or_default() += 1;
        Ok(self.issue(grant, family, true))
    }

    /// A grant made without the consent flow (the control API's bulk `grants`): a new
    /// family whose first access token lives `ttl`; refreshes then issue the usual lifetime.
    pub fn mint(&mut self, grant: Grant, ttl: Duration) -> Issued {
        let family = self.new_family();
        self.issue_for(grant, family, true, ttl.min(MAX_TTL))
    }

    pub fn refresh_counts(&self) -> RefreshCounts {
        RefreshCounts {
            grants_refreshed: self.refreshes.len(),
            refreshes: self.refreshes.values().map(|n| u64::from(*n)).sum(),
            most_refreshes_of_one_grant: self.refreshes.values().copied().max().unwrap_or(0),
            reused_refresh_tokens: self.reused,
        }
    }

    /// An access token without a refresh token (client credentials).
    pub fn client_credentials(&mut self, grant: Grant) -> Issued {
        let family = self.new_family();
        self.issue(grant, family, false)
    }

    /// RFC 7009 revocation. Revoking a refresh token ends its whole family, including the
    /// access tokens issued with it. Unknown tokens and other clients' tokens are ignored.
    pub fn revoke(&mut self, token: &str, client_id: &str) {
        if let Some(entry) = self.refresh.get(token) {
            if entry.grant.client_id == client_id {
                let family = entry.family;
                self.revoke_family(family);
            }
        } else if let Some(entry) = self.access.get_mut(token) {
            if entry.grant.client_id == client_id {
                entry.revoked = true;
            }
        }
    }

    /// A live (unexpired, unrevoked) access token.
    pub fn access(&self, token: &str) -> Option<AccessInfo> {
        let entry = self.access.get(token)?;
        entry.is_live(Instant::now()).then(|| AccessInfo {
            id: entry.id.clone(),
            grant: entry.grant.clone(),
        })
    }

    /// What an active access or refresh token stands for; `None` when not active.
    pub fn introspect(&self, token: &str) -> Option<Introspection> {
        let now = Instant::now();
        if let Some(entry) = self.access.get(token).filter(|t| t.is_live(now)) {
            let remaining = entry.expires_at.saturating_duration_since(now);
            return Some(Introspection {
                grant: entry.grant.clone(),
                token_type: "access_token",
                exp: Some(unix_secs(SystemTime::now() + remaining)),
                iat: Some(unix_secs(entry.issued_at)),
            });
        }
        let entry = self.refresh.get(token)?;
        (entry.status == RefreshStatus::Active).then(|| Introspection {
            grant: entry.grant.clone(),
            token_type: "refresh_token",
            exp: None,
            iat: None,
        })
    }

    /// Narrows what a refresh token grants to `only` (the user withdrew some consent).
    pub fn narrow(&mut self, refresh_token: &str, only: &[String]) {
        if let Some(entry) = self.refresh.get_mut(refresh_token) {
            entry.grant.scopes.retain(|s| only.contains(s));
        }
    }

    /// An access token that never expires (providers such as GitHub's OAuth apps).
    pub fn make_permanent(&mut self, token: &str) {
        if let Some(entry) = self.access.get_mut(token) {
            entry.expires_at = Instant::now() + PERMANENT;
        }
    }

    /// Withdraws a refresh token before it is handed out (providers that issue none).
    pub fn forget_refresh(&mut self, token: &str) {
        self.refresh.remove(token);
    }

    /// Makes every access token expire now (the control API's `expire_access_tokens`).
    pub fn expire_all_access(&mut self) {
        let now = Instant::now();
        for token in self.access.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    pub fn revoke_all(&mut self) {
        for token in self.access.values_mut() {
            token.revoked = true;
        }
        for token in self.refresh.values_mut() {
            token.status = RefreshStatus::Revoked;
        }
    }

    pub fn live_access_tokens(&self) -> usize {
        let now = Instant::now();
        self.access.values().filter(|t| t.is_live(now)).count()
    }

    pub fn live_refresh_tokens(&self) -> usize {
        self.refresh
            .values()
            .filter(|t| t.status == RefreshStatus::Active)
            .count()
    }

    fn new_family(&mut self) -> u64 {
        let family = self.next_family;
        self.next_family += 1;
        family
    }

    fn revoke_family(&mut self, family: u64) {
        for token in self.access.values_mut().filter(|t| t.family == family) {
            token.revoked = true;
        }
        for token in self.refresh.values_mut().filter(|t| t.family == family) {
            token.status = RefreshStatus::Revoked;
        }
    }

    fn issue(&mut self, grant: Grant, family: u64, with_refresh: bool) -> Issued {
        self.issue_for(grant, family, with_refresh, self.ttl)
    }

    fn issue_for(
        &mut self,
        grant: Grant,
        family: u64,
        with_refresh: bool,
        ttl: Duration,
    ) -> Issued {
        let now = Instant::now();
        if self.access.len() > self.sweep_at {
            self.access.retain(|_, t| t.is_live(now));
            self.sweep_at = SWEEP_THRESHOLD.max(self.access.len() * 2);
        }
        let access_token = format!("{}_at_{}", self.prefix, random_b64(32));
        let scope = grant.scope_string();
        let refresh_token = with_refresh.then(|| {
            let token = format!("{}_rt_{}", self.prefix, random_b64(32));
            self.refresh.insert(
                token.clone(),
                RefreshToken {
                    grant: grant.clone(),
                    family,
                    status: RefreshStatus::Active,
                },
            );
            token
        });
        self.access.insert(
            access_token.clone(),
            AccessToken {
                grant,
                id: random_hex_id(),
                family,
                issued_at: SystemTime::now(),
                expires_at: now + ttl,
                revoked: false,
            },
        );
        Issued {
            access_token,
            refresh_token,
            expires_in: whole_seconds(ttl),
            scope,
        }
    }
}

/// A lifetime as `expires_in`: rounded up to whole seconds, at least one.
fn whole_seconds(ttl: Duration) -> u64 {
    (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)
}

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn grant() -> Grant {
        Grant {
            client_id: "c".into(),
            account: "AcmeK1".into(),
            scopes: vec!["lists:read".into(), "accounts:read".into()],
        }
    }

    fn store() -> TokenStore {
        TokenStore::new("skla", Duration::from_secs(60))
    }

    fn exchange(store: &mut TokenStore) -> Issued {
        let code = store.create_code(grant(), "http://cb", &s256(VERIFIER));
        store
            .redeem_code(&code, "c", "http://cb", VERIFIER)
            .unwrap()
    }

    #[test]
    fn tokens_are_prefixed_and_long() {
        let issued = exchange(&mut store());
        assert!(issued.access_token.starts_with("skla_at_"));
        assert!(issued.access_token.len() >= 8 + 43);
        assert!(issued.refresh_token.unwrap().starts_with("skla_rt_"));
        assert_eq!(issued.scope, "lists:read accounts:read");
    }

    #[test]
    fn code_reuse_revokes_the_issued_tokens() {
        let mut store = store();
        let code = store.create_code(grant(), "http://cb", &s256(VERIFIER));
        let issued = store
            .redeem_code(&code, "c", "http://cb", VERIFIER)
            .unwrap();
        let again = store.redeem_code(&code, "c", "http://cb", VERIFIER);
        assert!(matches!(again, Err(GrantError::InvalidGrant(_))));
        assert!(store.access(&issued.access_token).is_none());
        assert_eq!(store.live_refresh_tokens(), 0);
    }

    #[test]
    fn wrong_redirect_or_client_is_refused() {
        let mut store = store();
        let code = store.create_code(grant(), "http://cb", &s256(VERIFIER));
        assert!(store
            .redeem_code(&code, "c", "http://other", VERIFIER)
            .is_err());
        let code = store.create_code(grant(), "http://cb", &s256(VERIFIER));
        assert!(store
            .redeem_code(&code, "x", "http://cb", VERIFIER)
            .is_err());
    }

    #[test]
    fn refresh_rotation_and_reuse_detection() {
        let mut store = store();
        let first = exchange(&mut store);
        let old = first.refresh_token.unwrap();
        let second = store.refresh(&old, "c", None).unwrap();
        let new = second.refresh_token.unwrap();
        assert_ne!(old, new);
        // The old token comes back: refused, and the new one dies with the family.
        assert!(store.refresh(&old, "c", None).is_err());
        assert!(store.refresh(&new, "c", None).is_err());
        assert!(store.access(&second.access_token).is_none());
    }

    #[test]
    fn refresh_may_narrow_but_not_widen_scope() {
        let mut store = store();
        let rt = exchange(&mut store).refresh_token.unwrap();
        let wide = store.refresh(&rt, "c", Some(vec!["profiles:read".into()]));
        assert_eq!(wide.err(), Some(GrantError::InvalidScope));
        let narrow = store
            .refresh(&rt, "c", Some(vec!["lists:read".into()]))
            .unwrap();
        assert_eq!(narrow.scope, "lists:read");
    }

    #[test]
    fn revoking_a_refresh_token_kills_its_access_tokens() {
        let mut store = store();
        let issued = exchange(&mut store);
        store.revoke(&issued.refresh_token.unwrap(), "c");
        assert!(store.access(&issued.access_token).is_none());
        assert_eq!(store.live_access_tokens(), 0);
    }

    #[test]
    fn expiry_and_introspection() {
        let mut store = store();
        let issued = exchange(&mut store);
        let info = store.introspect(&issued.access_token).unwrap();
        assert_eq!(info.grant.account, "AcmeK1");
        assert!(info.exp.unwrap() > info.iat.unwrap());
        store.expire_all_access();
        assert!(store.introspect(&issued.access_token).is_none());
        assert_eq!(store.live_refresh_tokens(), 1);
    }

    #[test]
    fn minted_grants_live_their_own_lifetime_and_count_refreshes() {
        let mut store = store();
        let minted = store.mint(grant(), Duration::from_secs(5));
        assert_eq!(minted.expires_in, 5);
        assert!(store.access(&minted.access_token).is_some());
        let old = minted.refresh_token.unwrap();
        let refreshed = store.refresh(&old, "c", None).unwrap();
        assert_eq!(refreshed.expires_in, 60);
        assert!(store.refresh(&old, "c", None).is_err());
        let counts = store.refresh_counts();
        assert_eq!(counts.grants_refreshed, 1);
        assert_eq!(counts.most_refreshes_of_one_grant, 1);
        assert_eq!(counts.reused_refresh_tokens, 1);
    }

    #[test]
    fn sub_second_lifetimes_round_up() {
        let store = TokenStore::new("skla", Duration::from_millis(1500));
        assert_eq!(store.expires_in(), 2);
    }
}
