//! The core's modules depend on each other in one direction only (no import circles): a circle
//! means a piece both sides need sits in the wrong one (as node selection once sat in
//! `drain::capacity`, used by `drain::interpod`, which `capacity` uses).

use kubemaint_testsupport::modgraph::ModuleGraph;

#[test]
fn core_modules_form_no_circle() {
    let graph =
        ModuleGraph::of_crate(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"));
    println!("{graph}");
    assert!(
        graph.modules.contains("drain::capacity") && graph.modules.contains("drain::interpod"),
        "the graph misses the drain modules: {graph}"
    );
    graph.assert_acyclic();
}
