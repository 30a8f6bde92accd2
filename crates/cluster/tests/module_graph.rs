//! The cluster edge's modules depend on each other in one direction only (no import circles).

use kubemaint_testsupport::modgraph::ModuleGraph;

#[test]
fn cluster_modules_form_no_circle() {
    let graph =
        ModuleGraph::of_crate(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"));
    println!("{graph}");
    assert!(
        graph.modules.contains("drain::evict"),
        "the graph misses the drain modules: {graph}"
    );
    graph.assert_acyclic();
}
