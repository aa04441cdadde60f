//! The Clients and Audit pages' filters as they sit in the URL: any query string parses
//! or is refused with a 400, never a panic.
#![no_main]
use connecthub::web::audit_view_state::AuditQuery;
use connecthub::web::clients_view_state::ListQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    let _ = ListQuery::parse(query);
    let _ = AuditQuery::parse(query);
});
