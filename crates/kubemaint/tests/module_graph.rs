//! The CLI's modules depend on each other in one direction only (no import circles).

use kubemaint_testsupport::modgraph::ModuleGraph;

#[test]
fn cli_modules_form_no_circle() {
    let graph = ModuleGraph::of_crate(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs"),
    );
    println!("{graph}");
    graph.assert_acyclic();
}
