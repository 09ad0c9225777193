//! A tour of HVS's geometry: distances on every manifold, exp/log maps,
//! transforms between models, a consensus mean, and de Sitter intervals.
//!
//! Run: `cargo run --release --example geometry_tour`

use hvs::geometry::{
    AnyManifold, DeSitter, Euclidean, FrechetOptions, GeometryError, Hyperboloid, Manifold,
    PoincareBall, Product, Sphere, lorentzian_cost_distance, transform,
};
use rand::SeedableRng;

fn fmt(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|a| format!("{a:+.4}")).collect();
    format!("[{}]", parts.join(", "))
}

fn main() -> Result<(), GeometryError> {
    println!("== Distances between exp0([1, 0, 0]) and exp0([0, 2, 0]) on each manifold");
    println!("   (each point is at distance |v| from the origin; the angle between them is 90°)");
    let spaces: Vec<(&str, AnyManifold)> = vec![
        ("euclidean E^3", Euclidean::new(3)?.into()),
        ("poincare B^3 (c=1)", PoincareBall::new(3, 1.0)?.into()),
        ("hyperboloid H^3 (c=1)", Hyperboloid::new(3, 1.0)?.into()),
        ("sphere S^3 (c=1)", Sphere::new(3, 1.0)?.into()),
        (
            "product H^1 x S^2 (w=1, 2)",
            Product::new(vec![
                (Hyperboloid::new(1, 1.0)?.into(), 1.0),
                (Sphere::new(2, 1.0)?.into(), 2.0),
            ])?
            .into(),
        ),
    ];
    for (name, m) in &spaces {
        let a = m.exp0(&[1.0, 0.0, 0.0])?;
        let b = m.exp0(&[0.0, 2.0, 0.0])?;
        println!("  {name:<28} d = {:.6}", m.distance(&a, &b)?);
    }
    println!(
        "  (flat: sqrt(5) = {:.6}; negative curvature stretches it, positive shrinks it; \
         the product's factors meet at right angles, so Pythagoras holds across them)",
        5f64.sqrt()
    );

    println!("\n== Maps on the hyperboloid H^2");
    let h = Hyperboloid::new(2, 1.0)?;
    let x = h.exp0(&[0.5, -0.25])?;
    let y = h.exp0(&[-1.0, 1.5])?;
    let v = h.log(&x, &y)?;
    println!("  x = {}   y = {}", fmt(&x), fmt(&y));
    println!(
        "  log_x(y) = {}  |log_x(y)| = {:.6} = d(x, y) = {:.6}",
        fmt(&v),
        h.norm(&x, &v)?,
        h.distance(&x, &y)?
    );
    println!("  exp_x(log_x(y)) = {}", fmt(&h.exp(&x, &v)?));
    println!("  geodesic midpoint = {}", fmt(&h.geodesic(&x, &y, 0.5)?));

    println!("\n== The same points in the Poincaré ball and back");
    let ball = PoincareBall::new(2, 1.0)?;
    let (hm, bm): (AnyManifold, AnyManifold) = (h.into(), ball.into());
    let (px, py) = (transform(&x, &hm, &bm)?, transform(&y, &hm, &bm)?);
    println!("  x -> {}   y -> {}", fmt(&px), fmt(&py));
    println!(
        "  ball distance {:.6} (isometry: equal to the hyperboloid's)",
        ball.distance(&px, &py)?
    );
    println!(
        "  near the edge: d(0, (1 - 1e-12) e1) = {:.6}",
        ball.distance(&[0.0, 0.0], &[1.0 - 1e-12, 0.0])?
    );

    println!("\n== Consensus: the weighted Fréchet mean of 1,000 agents' points in H^12");
    let h12 = Hyperboloid::new(12, 1.0)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let points: Vec<Vec<f64>> = (0..1000).map(|_| h12.random_point(&mut rng)).collect();
    let weights: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 10) as f64).collect();
    let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
    let t = std::time::Instant::now();
    let r = h12.frechet_mean(&refs, Some(&weights), &FrechetOptions::default())?;
    println!(
        "  converged: {} after {} iterations in {:.2?}; gradient norm {:.2e}; variance {:.4}",
        r.converged,
        r.iterations,
        t.elapsed(),
        r.gradient_norm,
        r.variance
    );
    println!(
        "  distance of the mean from the origin: {:.4}",
        h12.distance(&h12.origin(), &r.mean)?
    );

    println!("\n== The sphere refuses a mean that is not unique");
    let s = Sphere::new(2, 1.0)?;
    match s.frechet_mean(
        &[&[0.0, 0.0, 1.0], &[0.0, 0.0, -1.0]],
        None,
        &FrechetOptions::default(),
    ) {
        Ok(m) => println!("  unexpected mean {:?}", m.mean),
        Err(e) => println!("  error[{}]: {e}", e.code()),
    }

    println!("\n== de Sitter dS^2 and the cost space (τ, μ, ε, $)");
    let ds = DeSitter::new(2, 1.0)?;
    let o = ds.origin();
    for v in [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] {
        let p = ds.exp0(&v)?;
        let i = ds.geodesic_interval(&o, &p)?;
        println!(
            "  exp0({v:?}) = {}: {:?}, length {:.4}",
            fmt(&p),
            i.kind,
            i.magnitude
        );
    }
    let plans = [
        ("fast, costly", [1.0, 4.0, 2.0, 3.0]),
        ("slow, cheap", [6.0, 1.0, 1.0, 0.5]),
    ];
    let i = lorentzian_cost_distance(plans[0].1, plans[1].1)?;
    println!(
        "  '{}' vs '{}': {:?} interval, magnitude {:.4}",
        plans[0].0, plans[1].0, i.kind, i.magnitude
    );
    Ok(())
}
