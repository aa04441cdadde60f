//! `embed_migrations!` reads the migrations when the crate compiles; without this, a new
//! migration directory alone did not rebuild the crate, and the binary ran without it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
