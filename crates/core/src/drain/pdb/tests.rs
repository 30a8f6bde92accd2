use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::drain::testing::{PodBuilder, pdb};

fn int(i: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(i))
}
fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}
fn web(name: &str) -> Pod {
    PodBuilder::new("ns", name)
        .rs("web")
        .label("app", "web")
        .build()
}

#[test]
fn selection() {
    let b = pdb("ns", "b", "web", int(1), None, (1, 3, 2, 3));
    assert!(pdb_selects(&b, &web("a"), SelectorSemantics::V1));
    let other_ns = PodBuilder::new("other", "a").label("app", "web").build();
    assert!(!pdb_selects(&b, &other_ns, SelectorSemantics::V1));
    assert!(!pdb_selects(
        &b,
        &PodBuilder::new("ns", "a").build(),
        SelectorSemantics::V1
    ));

    let mut empty = b.clone();
    empty.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    assert!(pdb_selects(&empty, &web("a"), SelectorSemantics::V1));
    assert!(!pdb_selects(&empty, &web("a"), SelectorSemantics::V1beta1));
    let mut none = b.clone();
    none.spec.as_mut().unwrap().selector = None;
    assert!(!pdb_selects(&none, &web("a"), SelectorSemantics::V1));

    let mut exprs = b.clone();
    exprs.spec.as_mut().unwrap().selector = Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "app".into(),
                operator: "In".into(),
                values: Some(vec!["web".into(), "api".into()]),
            },
            LabelSelectorRequirement {
                key: "canary".into(),
                operator: "DoesNotExist".into(),
                values: None,
            },
        ]),
    });
    assert!(pdb_selects(&exprs, &web("a"), SelectorSemantics::V1));
    let canary = PodBuilder::new("ns", "c")
        .label("app", "web")
        .label("canary", "1")
        .build();
    assert!(!pdb_selects(&exprs, &canary, SelectorSemantics::V1));
    assert_eq!(
        selector_string(exprs.spec.as_ref().unwrap().selector.as_ref()),
        "app in (api,web),!canary"
    );
    // The v1beta1 "match none" marker written by the server never matches.
    let mut marker = b.clone();
    marker.spec.as_mut().unwrap().selector = Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match".into(),
            operator: "Exists".into(),
            values: None,
        }]),
    });
    assert!(!pdb_selects(&marker, &web("a"), SelectorSemantics::V1));
}

#[test]
fn never_allows_table() {
    for (what, min, max, expected, want) in [
        (
            "minAvailable = replicas",
            int(3),
            None,
            3,
            Some("minAvailable 3 >= 3 expected pods"),
        ),
        (
            "minAvailable > replicas",
            int(5),
            None,
            3,
            Some("minAvailable 5 >= 3 expected pods"),
        ),
        (
            "single replica",
            int(1),
            None,
            1,
            Some("minAvailable 1 with a single pod"),
        ),
        ("minAvailable < replicas", int(2), None, 3, None),
        (
            "minAvailable 100%",
            pct("100%"),
            None,
            4,
            Some("minAvailable 100% of 4 expected pods = 4"),
        ),
        (
            "minAvailable 90% of 3 rounds up to 3",
            pct("90%"),
            None,
            3,
            Some("minAvailable 90% of 3 expected pods = 3"),
        ),
        ("minAvailable 50% of 3 = 2", pct("50%"), None, 3, None),
        (
            "maxUnavailable 0",
            None,
            int(0),
            3,
            Some("maxUnavailable is 0"),
        ),
        (
            "maxUnavailable 0%",
            None,
            pct("0%"),
            3,
            Some("maxUnavailable is 0%"),
        ),
        ("maxUnavailable 1", None, int(1), 3, None),
        (
            "maxUnavailable 10% of 3 rounds up to 1",
            None,
            pct("10%"),
            3,
            None,
        ),
        ("no pods at all", int(1), None, 0, None),
    ] {
        let b = pdb("ns", "b", "web", min, max, (0, expected, 0, expected));
        assert_eq!(never_allows(&b).as_deref(), want, "{what}");
    }
}

#[test]
fn explanation_reads_well() {
    let b = pdb("ns", "web-pdb", "web", int(3), None, (0, 2, 3, 3));
    assert_eq!(
        explain(&b),
        "PDB ns/web-pdb (selector app=web) allows 0 disruptions: 2 healthy, 3 needed; it can never allow an eviction (minAvailable 3 >= 3 expected pods)"
    );
    let b = pdb("ns", "web-pdb", "web", None, int(1), (0, 2, 2, 3));
    assert_eq!(
        explain(&b),
        "PDB ns/web-pdb (selector app=web) allows 0 disruptions: 2 healthy, 2 needed"
    );
}

#[test]
fn pod_verdicts() {
    let ok = pdb("ns", "ok", "web", None, int(1), (1, 3, 2, 3));
    let zero = pdb("ns", "zero", "web", None, int(1), (0, 2, 2, 3));
    let never = pdb("ns", "never", "web", int(3), None, (0, 3, 3, 3));
    let sem = SelectorSemantics::V1;
    assert_eq!(
        evaluate_pod(&web("a"), std::slice::from_ref(&ok), sem),
        PodPdbVerdict::Allowed {
            pdb: "ns/ok".into(),
            disruptions_allowed: 1
        }
    );
    assert!(matches!(
        evaluate_pod(&web("a"), std::slice::from_ref(&zero), sem),
        PodPdbVerdict::Blocked { .. }
    ));
    assert!(matches!(
        evaluate_pod(&web("a"), std::slice::from_ref(&never), sem),
        PodPdbVerdict::NeverAllowed { .. }
    ));
    assert_eq!(
        evaluate_pod(&web("a"), &[ok.clone(), zero.clone()], sem),
        PodPdbVerdict::MultiplePdbs {
            pdbs: vec!["ns/ok".into(), "ns/zero".into()]
        }
    );
    assert_eq!(
        evaluate_pod(
            &PodBuilder::new("ns", "x").build(),
            std::slice::from_ref(&ok),
            sem
        ),
        PodPdbVerdict::NotCovered
    );
    let done = PodBuilder::new("ns", "d")
        .label("app", "web")
        .phase("Succeeded")
        .build();
    assert!(matches!(
        evaluate_pod(&done, &[ok.clone(), zero.clone()], sem),
        PodPdbVerdict::Ignored { .. }
    ));
    // Unready pod, healthy budget: the server lets it go (IfHealthyBudget).
    let unready = PodBuilder::new("ns", "u")
        .label("app", "web")
        .rs("web")
        .unready()
        .build();
    let healthy_zero = pdb("ns", "hz", "web", None, int(0), (0, 3, 3, 4));
    assert_eq!(
        evaluate_pod(&unready, std::slice::from_ref(&healthy_zero), sem),
        PodPdbVerdict::UnhealthyAllowed {
            pdb: "ns/hz".into()
        }
    );
    let mut stale = ok.clone();
    stale.metadata.generation = Some(2);
    assert_eq!(
        evaluate_pod(&web("a"), &[stale], sem),
        PodPdbVerdict::Stale {
            pdb: "ns/ok".into()
        }
    );
}

#[test]
fn blockers_group_by_pdb() {
    let one = pdb("ns", "one", "web", None, int(1), (1, 3, 2, 3));
    let pods = [web("a"), web("b")];
    let refs: Vec<&Pod> = pods.iter().collect();
    let b = node_blockers(&refs, std::slice::from_ref(&one), SelectorSemantics::V1);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].kind, BlockerKind::Paced);
    assert_eq!(b[0].pods.len(), 2);
    let never = pdb("ns", "never", "web", int(3), None, (0, 3, 3, 3));
    let b = node_blockers(&refs, std::slice::from_ref(&never), SelectorSemantics::V1);
    assert_eq!(b[0].kind, BlockerKind::NeverAllows);
    assert_eq!(b[0].pdbs, vec!["ns/never"]);
    let b = node_blockers(&refs, &[one, never], SelectorSemantics::V1);
    assert_eq!(b[0].kind, BlockerKind::MultiplePdbs);
    assert!(
        b[0].explanation.contains("ns/one, ns/never"),
        "{}",
        b[0].explanation
    );
}
