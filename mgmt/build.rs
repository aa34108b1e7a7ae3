//! Rebuilds the crate when the web console's build output (`console/dist`, embedded by
//! `src/console.rs`) appears or changes, and says so when it is missing: the binary then
//! serves a "console not built" page at /console/ instead of failing to compile.
use std::path::Path;

fn main() {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
    let dist = console.join("dist");
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        println!(
            "cargo:warning=the web console is not built (no console/dist): /console/ will say so. \
             Run scripts/build-console.sh, then cargo build again."
        );
        // Watch for dist/ to appear without scanning node_modules: the directory's own
        // entries change when the build creates it.
        println!(
            "cargo:rerun-if-changed={}",
            console.join("package.json").display()
        );
        println!("cargo:rerun-if-changed={}", console.display());
    }
}
