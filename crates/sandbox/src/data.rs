//! The sandbox's fixed test accounts: Klaviyo accounts with their lists and segments, and
//! Kustomer orgs with their teams and users. Everything is deterministic so tests and the
//! demo can rely on exact counts and stable ids.

use super::{Provider, KUSTOMER_API_KEYS};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use sha2::{Digest, Sha256};

pub struct Address {
    pub address1: &'static str,
    pub address2: &'static str,
    pub city: &'static str,
    pub region: &'static str,
    pub country: &'static str,
    pub zip: &'static str,
}

pub struct KlaviyoAccount {
    /// Klaviyo's account id, which is also the account's public API key (site id).
    pub id: &'static str,
    pub organization_name: &'static str,
    pub sender_name: &'static str,
    pub sender_email: &'static str,
    pub website_url: &'static str,
    pub address: Address,
    pub industry: &'static str,
    pub timezone: &'static str,
    pub currency: &'static str,
    pub locale: &'static str,
    pub test_account: bool,
    pub lists: usize,
    pub segments: usize,
}

/// The first account is the one `client_credentials` tokens belong to. The counts cover
/// the paging cases: several pages, exactly one full page, and none at all.
pub const KLAVIYO_ACCOUNTS: [KlaviyoAccount; 3] = [
    KlaviyoAccount {
        id: "AcmeK1",
        organization_name: "Acme Store",
        sender_name: "Acme Store",
        sender_email: "hello@acme-store.example",
        website_url: "https://acme-store.example",
        address: Address {
            address1: "125 Summer Street",
            address2: "Floor 4",
            city: "Boston",
            region: "MA",
            country: "United States",
            zip: "02110",
        },
        industry: "Retail / Apparel & Accessories",
        timezone: "America/New_York",
        currency: "USD",
        locale: "en-US",
        test_account: false,
        lists: 23,
        segments: 7,
    },
    KlaviyoAccount {
        id: "GlobexK2",
        organization_name: "Globex Retail",
        sender_name: "Globex Team",
        sender_email: "news@globex-retail.example",
        website_url: "https://globex-retail.example",
        address: Address {
            address1: "Friedrichstraße 68",
            address2: "",
            city: "Berlin",
            region: "Berlin",
            country: "Germany",
            zip: "10117",
        },
        industry: "Retail / Home & Garden",
        timezone: "Europe/Berlin",
        currency: "EUR",
        locale: "de-DE",
        test_account: true,
        lists: 4,
        segments: 12,
    },
    KlaviyoAccount {
        id: "HooliK3",
        organization_name: "Hooli Outlet",
        sender_name: "Hooli Outlet",
        sender_email: "deals@hooli-outlet.example",
        website_url: "https://hooli-outlet.example",
        address: Address {
            address1: "1 Hooli Way",
            address2: "",
            city: "Palo Alto",
            region: "CA",
            country: "United States",
            zip: "94301",
        },
        industry: "Electronics",
        timezone: "America/Los_Angeles",
        currency: "USD",
        locale: "en-US",
        test_account: true,
        lists: 0,
        segments: 10,
    },
];

pub fn klaviyo_account(id: &str) -> Option<&'static KlaviyoAccount> {
    KLAVIYO_ACCOUNTS.iter().find(|a| a.id == id)
}

/// A list or a segment of a Klaviyo account.
pub struct Group {
    pub id: String,
    pub name: String,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Copy)]
pub enum GroupKind {
    List,
    Segment,
}

const LIST_NAMES: [&str; 8] = [
    "Newsletter",
    "VIP Customers",
    "Back in Stock",
    "Preview List",
    "Wholesale",
    "Event Attendees",
    "Loyalty Members",
    "SMS Subscribers",
];

const SEGMENT_NAMES: [&str; 6] = [
    "Engaged (30 days)",
    "Repeat Buyers",
    "Lapsed Customers",
    "High AOV",
    "New Subscribers",
    "Cart Abandoners",
];

/// The lists or segments of an account, in creation order.
pub fn groups(account: &KlaviyoAccount, kind: GroupKind) -> Vec<Group> {
    let (count, names, tag) = match kind {
        GroupKind::List => (account.lists, &LIST_NAMES[..], "list"),
        GroupKind::Segment => (account.segments, &SEGMENT_NAMES[..], "segment"),
    };
    let start = Utc
        .with_ymd_and_hms(2023, 1, 9, 14, 30, 0)
        .single()
        .unwrap_or_else(Utc::now);
    (0..count)
        .map(|i| {
            let base = names[i % names.len()];
            let name = match i / names.len() {
                0 => base.to_string(),
                round => format!("{base} {}", round + 1),
            };
            let created = start + Duration::days(9 * i as i64) + Duration::minutes(37 * i as i64);
            Group {
                id: stable_id(&format!("{}:{tag}:{i}", account.id), 6),
                name,
                created: timestamp(created),
                updated: timestamp(created + Duration::days(3)),
            }
        })
        .collect()
}

/// Klaviyo's timestamp style: RFC 3339 with an explicit `+00:00`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A short alphanumeric id derived from `seed`, so it never changes between runs.
fn stable_id(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub struct Team {
    pub id: &'static str,
    pub name: &'static str,
}

pub struct User {
    pub id: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    /// "user" for people, "machine" for the user behind API keys.
    pub user_type: &'static str,
}

pub struct SeedCustomer {
    pub id: &'static str,
    pub name: &'static str,
    pub email: &'static str,
}

pub struct KustomerOrg {
    pub id: &'static str,
    pub name: &'static str,
    pub display_name: &'static str,
    pub api_key: &'static str,
    pub api_key_id: &'static str,
    pub teams: &'static [Team],
    /// The person who signs in on the consent page.
    pub user: User,
    /// The user API keys act as.
    pub machine_user: User,
    /// One customer present from the start, so lookups can succeed before any write.
    pub customer: SeedCustomer,
}

impl KustomerOrg {
    pub fn domain(&self) -> String {
        format!("{}.kustomerapp.com", self.name)
    }
}

/// The roles reported for API keys and for OAuth tokens granted without scopes.
pub const KUSTOMER_ROLES: [&str; 8] = [
    "org.user.customer.read",
    "org.user.customer.write",
    "org.user.conversation.read",
    "org.user.conversation.write",
    "org.user.message.write",
    "org.user.note.read",
    "org.user.note.write",
    "org.user.team.read",
];

pub const KUSTOMER_ORGS: [KustomerOrg; 2] = [
    KustomerOrg {
        id: "5f3a1c9e8b2d4a0017c6e101",
        name: KUSTOMER_API_KEYS[0].0,
        display_name: "Acme Support",
        api_key: KUSTOMER_API_KEYS[0].1,
        api_key_id: "5f3a1c9e8b2d4a0017c6e1a1",
        teams: &[
            Team {
                id: "5f3a1d2e8b2d4a0017c6e111",
                name: "Tier 1",
            },
            Team {
                id: "5f3a1d2e8b2d4a0017c6e112",
                name: "Billing",
            },
            Team {
                id: "5f3a1d2e8b2d4a0017c6e113",
                name: "Escalations",
            },
        ],
        user: User {
            id: "5f3a1e4b8b2d4a0017c6e121",
            name: "Alice Admin",
            email: "alice@acme-support.example",
            user_type: "user",
        },
        machine_user: User {
            id: "5f3a1e4b8b2d4a0017c6e122",
            name: "Acme API Key",
            email: "api-key@acme-support.example",
            user_type: "machine",
        },
        customer: SeedCustomer {
            id: "5f3a1f6c8b2d4a0017c6e131",
            name: "Jane Doe",
            email: "jane.doe@example.com",
        },
    },
    KustomerOrg {
        id: "5f3a1c9e8b2d4a0017c6e202",
        name: KUSTOMER_API_KEYS[1].0,
        display_name: "Initech Helpdesk",
        api_key: KUSTOMER_API_KEYS[1].1,
        api_key_id: "5f3a1c9e8b2d4a0017c6e2a2",
        teams: &[
            Team {
                id: "5f3a1d2e8b2d4a0017c6e211",
                name: "Support",
            },
            Team {
                id: "5f3a1d2e8b2d4a0017c6e212",
                name: "Sales",
            },
        ],
        user: User {
            id: "5f3a1e4b8b2d4a0017c6e221",
            name: "Bill Lumbergh",
            email: "bill@initech.example",
            user_type: "user",
        },
        machine_user: User {
            id: "5f3a1e4b8b2d4a0017c6e222",
            name: "Initech API Key",
            email: "api-key@initech.example",
            user_type: "machine",
        },
        customer: SeedCustomer {
            id: "5f3a1f6c8b2d4a0017c6e231",
            name: "Peter Gibbons",
            email: "peter@initech.example",
        },
    },
];

pub fn kustomer_org(id: &str) -> Option<&'static KustomerOrg> {
    KUSTOMER_ORGS.iter().find(|o| o.id == id)
}

pub fn kustomer_org_by_key(key: &str) -> Option<&'static KustomerOrg> {
    KUSTOMER_ORGS
        .iter()
        .find(|o| super::http::secure_eq(o.api_key, key))
}

/// One radio button of the consent page.
pub struct AccountChoice {
    pub id: &'static str,
    pub label: &'static str,
    pub detail: String,
}

/// The accounts a person may pick on a provider's consent page (Kustomer: orgs).
pub fn consent_accounts(provider: Provider) -> Vec<AccountChoice> {
    match provider {
        Provider::Klaviyo => KLAVIYO_ACCOUNTS
            .iter()
            .map(|a| AccountChoice {
                id: a.id,
                label: a.organization_name,
                detail: format!(
                    "{} · {}{}",
                    a.id,
                    a.website_url,
                    if a.test_account {
                        " · test account"
                    } else {
                        ""
                    }
                ),
            })
            .collect(),
        Provider::Kustomer => KUSTOMER_ORGS
            .iter()
            .map(|o| AccountChoice {
                id: o.id,
                label: o.display_name,
                detail: format!("{} · signed in as {}", o.domain(), o.user.email),
            })
            .collect(),
    }
}

pub fn account_exists(provider: Provider, id: &str) -> bool {
    match provider {
        Provider::Klaviyo => klaviyo_account(id).is_some(),
        Provider::Kustomer => kustomer_org(id).is_some(),
    }
}

/// The account `client_credentials` tokens act for.
pub fn first_account(provider: Provider) -> &'static str {
    match provider {
        Provider::Klaviyo => KLAVIYO_ACCOUNTS[0].id,
        Provider::Kustomer => KUSTOMER_ORGS[0].id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_stable_and_distinct() {
        let account = &KLAVIYO_ACCOUNTS[0];
        let lists = groups(account, GroupKind::List);
        assert_eq!(lists.len(), 23);
        let again = groups(account, GroupKind::List);
        assert_eq!(lists[5].id, again[5].id);
        let mut ids: Vec<_> = lists.iter().map(|l| l.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 23);
        assert!(lists[0].created.ends_with("+00:00"));
        assert_eq!(lists[8].name, "Newsletter 2");
    }

    #[test]
    fn api_keys_map_to_orgs() {
        for (name, key) in KUSTOMER_API_KEYS {
            assert_eq!(kustomer_org_by_key(key).map(|o| o.name), Some(name));
        }
        assert!(kustomer_org_by_key("nope").is_none());
    }
}
