//! Distances, maps and means checked against closed forms derived by hand
//! (the derivation is beside each assertion), not against the crate itself.

use hvs_geometry::{
    DeSitter, Euclidean, FrechetOptions, Hyperboloid, IntervalKind, Manifold, PoincareBall, Sphere,
    hyperboloid_to_klein, hyperboloid_to_poincare, lorentzian_cost_distance,
    poincare_to_hyperboloid,
};

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} != {b}");
}

fn close_vec(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        close(*x, *y, tol);
    }
}

#[test]
fn poincare_distances() {
    let b = PoincareBall::new(2, 1.0).unwrap();
    // d(0, p) = 2 artanh(|p|) = ln((1+|p|)/(1-|p|)); |p| = 1/2 gives ln 3.
    close(
        b.distance(&[0.0, 0.0], &[0.5, 0.0]).unwrap(),
        3f64.ln(),
        1e-14,
    );
    // Through the origin distances add: d(-r, r) = 2 ln((1+r)/(1-r)).
    close(
        b.distance(&[-0.3, 0.0], &[0.3, 0.0]).unwrap(),
        2.0 * (1.3f64 / 0.7).ln(),
        1e-14,
    );
    // With curvature -c: d(0, p) = (2/√c) artanh(√c|p|); c = 4, |p| = 1/4:
    // (2/2) artanh(1/2) = ln(3)/2.
    let b4 = PoincareBall::new(2, 4.0).unwrap();
    close(
        b4.distance(&[0.0, 0.0], &[0.0, 0.25]).unwrap(),
        3f64.ln() / 2.0,
        1e-14,
    );
}

#[test]
fn mobius_addition() {
    let b = PoincareBall::new(2, 1.0).unwrap();
    // x = (1/2, 0), y = (0, 1/2): <x,y> = 0, |x|^2 = |y|^2 = 1/4.
    // numerator (1 + 1/4) x + (1 - 1/4) y = (5/8, 3/8); denominator 1 + 1/16 = 17/16.
    close_vec(
        &b.mobius_add(&[0.5, 0.0], &[0.0, 0.5]).unwrap(),
        &[10.0 / 17.0, 6.0 / 17.0],
        1e-15,
    );
    // (-x) ⊕ x = 0 and 0 ⊕ y = y.
    close_vec(
        &b.mobius_add(&[-0.3, 0.2], &[0.3, -0.2]).unwrap(),
        &[0.0, 0.0],
        1e-15,
    );
    close_vec(
        &b.mobius_add(&[0.0, 0.0], &[0.3, -0.2]).unwrap(),
        &[0.3, -0.2],
        1e-15,
    );
    // Conformal factor 2 / (1 - |x|^2) = 2 / 0.75.
    close(b.conformal_factor(&[0.5, 0.0]).unwrap(), 8.0 / 3.0, 1e-15);
}

#[test]
fn hyperboloid_distances_and_maps() {
    let h = Hyperboloid::new(2, 1.0).unwrap();
    let on_axis = |t: f64| vec![t.cosh(), t.sinh(), 0.0];
    // Points on one geodesic through the origin: d = |a - b|, here far out,
    // where the naive acosh(-<x,y>) has lost four digits.
    close(
        h.distance(&on_axis(19.5), &on_axis(20.0)).unwrap(),
        0.5,
        1e-10,
    );
    close(
        h.distance(&on_axis(-3.0), &on_axis(2.0)).unwrap(),
        5.0,
        1e-14,
    );
    // Orthogonal rays at radius a: -<x,y> = cosh^2 a, so d = acosh(cosh^2 a).
    let a = 1.0f64;
    let y = vec![a.cosh(), 0.0, a.sinh()];
    close(
        h.distance(&on_axis(a), &y).unwrap(),
        (a.cosh().powi(2)).acosh(),
        1e-14,
    );
    // exp at the origin along the spatial axis: (cosh t, sinh t, 0).
    close_vec(
        &h.exp(&h.origin(), &[0.0, 1.25, 0.0]).unwrap(),
        &on_axis(1.25),
        1e-14,
    );
    // log is the inverse: at the origin, log(on_axis(t)) = (0, t, 0).
    close_vec(
        &h.log(&h.origin(), &on_axis(0.75)).unwrap(),
        &[0.0, 0.75, 0.0],
        1e-14,
    );
    // Curvature -c scales distances by 1/√c: on H_4 the point
    // (cosh t, sinh t, 0)/2 is at distance t/2 from the origin (1/2, 0, 0).
    let h4 = Hyperboloid::new(2, 4.0).unwrap();
    let p = [1.5f64.cosh() / 2.0, 1.5f64.sinh() / 2.0, 0.0];
    close(h4.distance(&h4.origin(), &p).unwrap(), 0.75, 1e-14);
}

#[test]
fn sphere_distances_and_maps() {
    let s = Sphere::new(2, 0.25).unwrap(); // radius 2
    // A quarter great circle of radius 2 is π long.
    close(
        s.distance(&[2.0, 0.0, 0.0], &[0.0, 2.0, 0.0]).unwrap(),
        std::f64::consts::PI,
        1e-15,
    );
    // Antipodes are 2π apart.
    close(
        s.distance(&[0.0, 0.0, 2.0], &[0.0, 0.0, -2.0]).unwrap(),
        2.0 * std::f64::consts::PI,
        1e-15,
    );
    // Walking π along the tangent (0, 1, 0) from (2, 0, 0) reaches (0, 2, 0).
    close_vec(
        &s.exp(&[2.0, 0.0, 0.0], &[0.0, std::f64::consts::PI, 0.0])
            .unwrap(),
        &[0.0, 2.0, 0.0],
        1e-14,
    );
}

#[test]
fn model_transforms() {
    // p = (1/2, 0) in B_1: x_0 = (1 + 1/4)/(1 - 1/4) = 5/3, x_s = 2p/(1 - 1/4) = (4/3, 0).
    let x = poincare_to_hyperboloid(&[0.5, 0.0], 1.0).unwrap();
    close_vec(&x, &[5.0 / 3.0, 4.0 / 3.0, 0.0], 1e-15);
    close_vec(
        &hyperboloid_to_poincare(&x, 1.0).unwrap(),
        &[0.5, 0.0],
        1e-15,
    );
    // Klein: k = x_s / x_0 = (4/5, 0), which is also 2p/(1 + |p|^2).
    close_vec(&hyperboloid_to_klein(&x, 1.0).unwrap(), &[0.8, 0.0], 1e-15);
}

#[test]
fn lorentzian_cost_intervals() {
    let zero = [0.0; 4];
    // Pure time difference: timelike, proper time 1.
    let i = lorentzian_cost_distance([1.0, 0.0, 0.0, 0.0], zero).unwrap();
    assert_eq!(
        (i.kind, i.magnitude, i.squared),
        (IntervalKind::Timelike, 1.0, -1.0)
    );
    // Memory 3, energy 4: spacelike, 5.
    let i = lorentzian_cost_distance(zero, [0.0, 3.0, 4.0, 0.0]).unwrap();
    assert_eq!((i.kind, i.magnitude), (IntervalKind::Spacelike, 5.0));
    // -25 + 9 + 16 = 0: lightlike.
    let i = lorentzian_cost_distance([5.0, 3.0, 4.0, 0.0], zero).unwrap();
    assert_eq!((i.kind, i.magnitude), (IntervalKind::Lightlike, 0.0));
    // -4 + 1 + 1 + 1 = -1: timelike, 1.
    let i = lorentzian_cost_distance([2.0, 1.0, 1.0, 1.0], zero).unwrap();
    assert_eq!(i.kind, IntervalKind::Timelike);
    close(i.magnitude, 1.0, 1e-15);
    assert!(hvs_geometry::causally_precedes(zero, [2.0, 1.0, 1.0, 1.0]).unwrap());
    assert!(!hvs_geometry::causally_precedes([2.0, 1.0, 1.0, 1.0], zero).unwrap());
    assert!(!hvs_geometry::causally_precedes(zero, [1.0, 3.0, 0.0, 0.0]).unwrap());
}

#[test]
fn de_sitter_geodesic_intervals() {
    // dS^1 with c = 1 is the hyperbola x_1^2 - x_0^2 = 1. Points
    // (sinh a, cosh a) and (sinh b, cosh b) have <x,y>_L = cosh(a - b) > 1:
    // timelike, proper time |a - b| along the hyperbola.
    let ds1 = DeSitter::new(1, 1.0).unwrap();
    let p = |a: f64| vec![a.sinh(), a.cosh()];
    let i = ds1.geodesic_interval(&p(0.2), &p(1.5)).unwrap();
    assert_eq!(i.kind, IntervalKind::Timelike);
    close(i.magnitude, 1.3, 1e-13);
    // In dS^2 the waist circle x_0 = 0 is a spacelike geodesic: points at
    // angles θ1, θ2 on it are |θ1 - θ2| apart.
    let ds2 = DeSitter::new(2, 1.0).unwrap();
    let q = |t: f64| vec![0.0, t.cos(), t.sin()];
    let i = ds2.geodesic_interval(&q(0.1), &q(1.0)).unwrap();
    assert_eq!(i.kind, IntervalKind::Spacelike);
    close(i.magnitude, 0.9, 1e-13);
    // Points with <x,y>_L < -1 are joined by no geodesic:
    // x = (0, 1, 0), y = (sinh 1, -cosh 1, 0) gives <x,y>_L = -cosh 1.
    let y = [1f64.sinh(), -(1f64.cosh()), 0.0];
    assert!(ds2.geodesic_interval(&[0.0, 1.0, 0.0], &y).is_err());
}

#[test]
fn means_on_one_dimensional_manifolds_are_averages_of_positions() {
    // H^1 is isometric to the real line by t ↦ (cosh t, sinh t), and S^1
    // (within a quarter circle of the mean) by θ ↦ (cos θ, sin θ): the
    // weighted Fréchet mean is the point at the weighted average position.
    let ts = [-1.0, 0.3, 2.0, 4.5];
    let ws = [1.0, 2.0, 0.5, 0.25];
    let avg = ts.iter().zip(&ws).map(|(t, w)| t * w).sum::<f64>() / ws.iter().sum::<f64>();
    let h = Hyperboloid::new(1, 1.0).unwrap();
    let pts: Vec<Vec<f64>> = ts.iter().map(|t| vec![t.cosh(), t.sinh()]).collect();
    let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
    let m = h
        .frechet_mean(&refs, Some(&ws), &FrechetOptions::default())
        .unwrap();
    assert!(m.converged);
    close_vec(&m.mean, &[avg.cosh(), avg.sinh()], 1e-10);

    let s = Sphere::new(1, 1.0).unwrap();
    let angles = [0.1, 0.5, 0.9, 1.2];
    let avg = angles.iter().zip(&ws).map(|(t, w)| t * w).sum::<f64>() / ws.iter().sum::<f64>();
    let pts: Vec<Vec<f64>> = angles.iter().map(|t| vec![t.cos(), t.sin()]).collect();
    let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
    let m = s
        .frechet_mean(&refs, Some(&ws), &FrechetOptions::default())
        .unwrap();
    assert!(m.converged);
    close_vec(&m.mean, &[avg.cos(), avg.sin()], 1e-10);
    // The variance is the weighted mean squared angular deviation.
    let var = angles
        .iter()
        .zip(&ws)
        .map(|(t, w)| w * (t - avg).powi(2))
        .sum::<f64>()
        / ws.iter().sum::<f64>();
    close(m.variance, var, 1e-10);
}

#[test]
fn euclidean_mean_is_the_weighted_average() {
    let e = Euclidean::new(2).unwrap();
    let m = e
        .frechet_mean(
            &[&[0.0, 0.0], &[4.0, 2.0]],
            Some(&[3.0, 1.0]),
            &FrechetOptions::default(),
        )
        .unwrap();
    assert_eq!(m.mean, vec![1.0, 0.5]);
    assert_eq!(m.iterations, 0);
    assert!(m.converged && m.gradient_norm < 1e-15);
}

#[test]
fn gyromidpoint_of_symmetric_points_is_the_centre() {
    let b = PoincareBall::new(2, 1.0).unwrap();
    let g = b.gyromidpoint(&[&[0.6, 0.1], &[-0.6, -0.1]], None).unwrap();
    close_vec(&g, &[0.0, 0.0], 1e-15);
    // On one ray through the origin it is the geodesic midpoint: the points
    // sit at hyperbolic positions 2 artanh(0.2) and 2 artanh(0.6), so the
    // midpoint has |m| = tanh((artanh 0.2 + artanh 0.6) / 2).
    let m = b.gyromidpoint(&[&[0.2, 0.0], &[0.6, 0.0]], None).unwrap();
    let expected = ((0.2f64.atanh() + 0.6f64.atanh()) / 2.0).tanh();
    close_vec(&m, &[expected, 0.0], 1e-14);
}
