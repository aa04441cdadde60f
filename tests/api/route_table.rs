//! The route table the bad-input suite (`route_bad_input`) reads is complete.

/// The suite sees only routes registered through `route_table::Table`: actix's own
/// `.route("…")` or `web::scope(…)` in src/ would add a route it never tries.
#[test]
fn every_route_is_registered_through_the_route_table() {
    fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("route_table.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let spelled = ["cfg.route(", ".route(\"", ".route(&", "web::scope("];
                    if spelled.iter().any(|s| line.contains(s)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    visit(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "routes outside the route table:\n{}",
        found.join("\n")
    );
    let routes = connecthub::startup::route_table();
    assert!(routes
        .iter()
        .any(|r| r.path == "/api/integrations/{provider}/oauth/start"));
    assert!(routes
        .iter()
        .any(|r| r.path == "/api/v1/proxy/{client_id}/{tail:.*}" && r.method.is_none()));
}
