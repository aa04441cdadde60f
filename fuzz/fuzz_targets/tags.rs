//! Tags typed on the Clients pages: any text gives at most the cap of normalised tags.
#![no_main]
use connecthub::clients::tags::{normalise_tag, parse_tags, MAX_TAGS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Ok(tags) = parse_tags(raw) {
        assert!(tags.len() <= MAX_TAGS);
        for tag in &tags {
            assert_eq!(normalise_tag(tag).as_ref(), Ok(tag), "{raw:?}");
            assert!(!tag.chars().any(char::is_control), "{tag:?}");
        }
    }
});
