//! Resource requests and allocatable amounts as the scheduler counts them, in milli-units.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::drain::quantity::{QuantityError, parse_milli};

/// Resource amounts in milli-units by resource name (`cpu`, `memory`, `pods`, ...).
pub type Resources = BTreeMap<String, i128>;

fn add_quantities(
    into: &mut Resources,
    q: Option<&BTreeMap<String, Quantity>>,
) -> Result<(), QuantityError> {
    for (k, v) in q.into_iter().flatten() {
        let v = parse_milli(&v.0)?;
        // The key is copied only the first time (this runs for every pod of the cluster).
        match into.get_mut(k) {
            Some(e) => *e += v,
            None => {
                into.insert(k.clone(), v);
            }
        }
    }
    Ok(())
}

fn container_requests(c: &Container) -> Result<Resources, QuantityError> {
    let mut r = Resources::new();
    add_quantities(
        &mut r,
        c.resources.as_ref().and_then(|r| r.requests.as_ref()),
    )?;
    Ok(r)
}

fn max_into(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn sum_into(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// The pod's effective requests as the scheduler computes them: max(sum of app containers +
/// sidecars, each init container + the sidecars started before it) + overhead, plus one `pods`.
pub fn pod_requests(pod: &Pod) -> Result<Resources, QuantityError> {
    let mut total = Resources::new();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(total);
    };
    // App containers add up: straight into the total, no map per container.
    for c in &spec.containers {
        add_quantities(
            &mut total,
            c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        )?;
    }
    let mut sidecars = Resources::new();
    let mut init_max = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let req = container_requests(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sum_into(&mut sidecars, &req);
            max_into(&mut init_max, &sidecars);
        } else {
            let mut with = sidecars.clone();
            sum_into(&mut with, &req);
            max_into(&mut init_max, &with);
        }
    }
    sum_into(&mut total, &sidecars);
    max_into(&mut total, &init_max);
    add_quantities(&mut total, spec.overhead.as_ref())?;
    total.retain(|_, v| *v != 0);
    total.insert("pods".to_owned(), 1000);
    Ok(total)
}

/// `status.allocatable` of a node.
pub fn node_allocatable(node: &Node) -> Result<Resources, QuantityError> {
    let mut r = Resources::new();
    add_quantities(
        &mut r,
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
    )?;
    Ok(r)
}
