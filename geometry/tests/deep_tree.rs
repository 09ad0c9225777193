//! A deep synthetic hierarchy, as a user embedding a taxonomy would build
//! it: a spine 30 levels deep, each step one unit outwards, with three
//! leaves off every node. What an index and a consensus ask of it —
//! nearest neighbours through `distance_unchecked` (what the storage index
//! calls, through `AnyManifold`) and weighted means — must come out right at
//! every depth, in both models.

use hvs_geometry::{AnyManifold, FrechetOptions, Hyperboloid, Manifold, PoincareBall, transform};
use rand::{Rng, SeedableRng};

const DEPTH: usize = 30;
const DIM: usize = 5;

struct Tree {
    /// Spine node at depth `i` is `nodes[4 i]`; its leaves follow it.
    nodes: Vec<Vec<f64>>,
}

/// A tangent vector at `x` of length `len`, built in an orthonormal frame
/// (the radial unit vector `(|x_s|, x_0 x̂_s)` and spatial vectors across
/// `x̂_s`): mostly outwards along the radius when `outward`, else in a random
/// direction. (A random ambient vector projected on the tangent space would
/// be nearly radial far out.)
fn step(h: &Hyperboloid, x: &[f64], len: f64, outward: bool, rng: &mut impl Rng) -> Vec<f64> {
    let w: Vec<f64> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    let xs = &x[1..];
    let n = xs.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut v = vec![0.0; DIM + 1];
    if n == 0.0 {
        v[1..].copy_from_slice(&w);
    } else {
        let along: f64 = w.iter().zip(xs).map(|(a, b)| a * b).sum::<f64>() / n;
        let radial = if outward {
            1.0
        } else {
            rng.random_range(-1.0..1.0)
        };
        let across = if outward { 0.2 } else { 1.0 };
        v[0] = radial * n;
        for i in 0..DIM {
            v[i + 1] = radial * x[0] * xs[i] / n + across * (w[i] - along * xs[i] / n);
        }
    }
    let l = h.norm(x, &v).unwrap();
    v.iter().map(|a| a * len / l).collect()
}

fn build(h: &Hyperboloid, rng: &mut impl Rng) -> Tree {
    let mut nodes = Vec::new();
    let mut x = h.origin();
    for _ in 0..=DEPTH {
        nodes.push(x.clone());
        for _ in 0..3 {
            let v = step(h, &x, 1.0, false, rng);
            nodes.push(h.exp(&x, &v).unwrap());
        }
        let v = step(h, &x, 1.0, true, rng);
        x = h.exp(&x, &v).unwrap();
    }
    Tree { nodes }
}

fn nearest(m: &AnyManifold, nodes: &[Vec<f64>], q: &[f64]) -> usize {
    (0..nodes.len())
        .min_by(|&a, &b| {
            m.distance_unchecked(q, &nodes[a])
                .total_cmp(&m.distance_unchecked(q, &nodes[b]))
        })
        .unwrap()
}

#[test]
fn a_hierarchy_30_levels_deep_keeps_its_neighbours_and_means() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    let h = Hyperboloid::new(DIM, 1.0).unwrap();
    let tree = build(&h, &mut rng);
    let hyp: AnyManifold = h.into();
    let ball: AnyManifold = PoincareBall::new(DIM, 1.0).unwrap().into();
    let in_ball: Vec<Vec<f64>> = tree
        .nodes
        .iter()
        .map(|x| transform(x, &hyp, &ball).unwrap())
        .collect();
    for (m, nodes) in [(&hyp, &tree.nodes), (&ball, &in_ball)] {
        for depth in (0..=DEPTH).step_by(5) {
            let i = 4 * depth;
            let radius = m.distance(&m.origin(), &nodes[i]).unwrap();
            // Every node was rounded to f64 coordinates: distances are exact
            // for those, so they are 1 to within the resolution there
            // (about ulp(sinh r), docs/GEOMETRY.md).
            let tol = 1e-9 + 1e-15 * (radius + 1.0).cosh();
            // Parent and leaves are one unit away at every depth.
            for j in i + 1..i + 4 {
                let d = m.distance(&nodes[i], &nodes[j]).unwrap();
                assert!((d - 1.0).abs() < tol, "{} depth {depth}: {d}", m.name());
            }
            if depth > 0 {
                let d = m.distance(&nodes[i - 4], &nodes[i]).unwrap();
                assert!((d - 1.0).abs() < tol, "{} depth {depth}: {d}", m.name());
            }
            // A query 0.05 from each node (fifty times the resolution at
            // radius 30) finds that node.
            for j in i..i + 4 {
                let v = m
                    .project_tangent(&nodes[j], &vec![0.3; m.ambient_dim()])
                    .unwrap();
                let n = m.norm(&nodes[j], &v).unwrap();
                let q = m
                    .exp(
                        &nodes[j],
                        &v.iter().map(|a| a * 0.05 / n).collect::<Vec<_>>(),
                    )
                    .unwrap();
                let k = nearest(m, nodes, &q);
                assert_eq!(
                    k,
                    j,
                    "{} radius {radius}: d(j, k) = {}, d(q, j) = {}, d(q, k) = {}",
                    m.name(),
                    m.distance(&nodes[j], &nodes[k]).unwrap(),
                    m.distance(&q, &nodes[j]).unwrap(),
                    m.distance(&q, &nodes[k]).unwrap()
                );
            }
            // Consensus of a node and its leaves, weighted: converged, and
            // the mean of a node and its first leaf is their midpoint.
            let group: Vec<&[f64]> = nodes[i..i + 4].iter().map(Vec::as_slice).collect();
            let r = m
                .frechet_mean(
                    &group,
                    Some(&[4.0, 1.0, 2.0, 3.0]),
                    &FrechetOptions::default(),
                )
                .unwrap();
            assert!(
                r.converged && r.iterations <= 8,
                "{} depth {depth}: {r:?}",
                m.name()
            );
            let pair = m
                .frechet_mean(&group[..2], None, &FrechetOptions::default())
                .unwrap();
            for p in &group[..2] {
                let d = m.distance(&pair.mean, p).unwrap();
                assert!((d - 0.5).abs() < tol, "{} depth {depth}: {d}", m.name());
            }
        }
    }
}
