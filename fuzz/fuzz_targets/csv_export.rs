//! The audit CSV export: any 12 fields come back unchanged (after defusing) when read as
//! CSV, and no cell starts as a formula.
#![no_main]
use connecthub::web::csv_export::{csv_rows, defused};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut fields: Vec<String> = text.splitn(12, '\u{1}').map(defused).collect();
    fields.resize(12, String::new());
    let row: [String; 12] = fields.clone().try_into().unwrap();
    let bytes = csv_rows(std::iter::once(row)).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..]);
    let read: Vec<String> = reader
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(read, fields);
    for cell in &read {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?}"
        );
    }
});
