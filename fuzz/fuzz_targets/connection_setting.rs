//! A connection setting (a Kustomer subdomain, a captured URL): any value is refused or,
//! once accepted and put in its provider's URL, leaves that URL's host, path and query as
//! the provider declared them, so no value can send a token to another host.
#![no_main]
use connecthub::providers::connection_config::{self, SettingDef, SettingDefs, SettingKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &str| {
    let subdomain = SettingDef::new("subdomain", "Subdomain", "", SettingKind::Subdomain);
    let text = SettingDef::new("realm", "Realm", "", SettingKind::Text);
    let defs = SettingDefs {
        fields: vec![subdomain.clone(), text.clone()],
        capture_hosts: vec!["example.com".into()],
    };
    let template = "https://${connection.subdomain}.api.example.com/v1/${connection.realm}?x=1";
    let checked = |def: &SettingDef| defs.check(def, value).ok();
    let Some(org) = checked(&subdomain) else {
        return;
    };
    let realm = checked(&text).unwrap_or_else(|| "r".into());
    let values = defs
        .parse_entered(|name| {
            Some(if name == "subdomain" {
                org.as_str()
            } else {
                realm.as_str()
            })
        })
        .expect("checked values pass again");
    let url = connection_config::fill(template, &values, &defs).expect("every value is there");
    let parsed = url::Url::parse(&url).expect("a filled URL parses");
    assert_eq!(
        parsed.host_str(),
        Some(format!("{org}.api.example.com").as_str())
    );
    assert_eq!(parsed.path(), format!("/v1/{realm}"));
    assert_eq!(parsed.query(), Some("x=1"));
    assert!(parsed.username().is_empty() && parsed.port().is_none());
});
