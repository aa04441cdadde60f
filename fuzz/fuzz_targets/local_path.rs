//! Where a form or query says the browser goes next: only a path of this site passes.
#![no_main]
use connecthub::local_path::LocalPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Some(path) = LocalPath::parse(raw) {
        let p = path.as_str();
        assert!(p.starts_with('/') && !p.starts_with("//"), "{p:?}");
        assert!(
            !p.contains('\\') && !p.chars().any(char::is_control),
            "{p:?}"
        );
        // The browser resolves it against this site: it must stay on this site.
        let base = url::Url::parse("https://hub.example/").unwrap();
        if let Ok(resolved) = base.join(p) {
            assert_eq!(resolved.host_str(), Some("hub.example"), "{p:?}");
        }
    }
    assert!(LocalPath::or(Some(raw), "/").as_str().starts_with('/'));
});
