//! How well `transform` keeps nearest neighbours between every ordered pair
//! of manifold kinds (curvature 1), at a few dimensions and data spreads.
//!
//! ```text
//! cargo run --release -p hvs-geometry --example transfer_distortion [-- --quick]
//! ```
//!
//! Prints a recall@10 summary (one row per pair) and the full statistics
//! (recall, recall with 5× over-fetch re-ranked by source distance,
//! Spearman ρ of distances, percentiles of d_to / d_from, refused points). `--quick` uses 500 points and 100 queries. The table in
//! docs/GEOMETRY.md ("Carrying points between manifolds") comes from a run
//! of this example.

use std::f64::consts::FRAC_PI_2;
use std::time::Instant;

use hvs_geometry::{
    AnyManifold, DeSitter, Euclidean, GeometryError, Hyperboloid, PoincareBall, Sphere,
    TransferDistortion, TransferSample, measure_transfer,
};

const DIMS: [usize; 3] = [2, 8, 32];
const KINDS: [&str; 5] = [
    "euclidean",
    "poincare",
    "hyperboloid",
    "sphere",
    "de_sitter",
];

/// The spreads: (label, largest distance from the origin). On a sphere
/// source "far" is 3.0 (almost the whole sphere; 5 would wrap around).
const SPREADS: [(&str, f64); 3] = [("r≤1", 1.0), ("r≤π/2", FRAC_PI_2), ("r≤5", 5.0)];

fn manifold(kind: &str, dim: usize, c: f64) -> Result<AnyManifold, GeometryError> {
    Ok(match kind {
        "euclidean" => Euclidean::new(dim)?.into(),
        "poincare" => PoincareBall::new(dim, c)?.into(),
        "hyperboloid" => Hyperboloid::new(dim, c)?.into(),
        "sphere" => Sphere::new(dim, c)?.into(),
        _ => DeSitter::new(dim, c)?.into(),
    })
}

fn short(kind: &str) -> &str {
    match kind {
        "euclidean" => "E",
        "poincare" => "B",
        "hyperboloid" => "H",
        "sphere" => "S",
        _ => "dS",
    }
}

fn radius_for(source: &str, radius: f64) -> f64 {
    if source == "sphere" {
        radius.min(3.0)
    } else {
        radius
    }
}

struct Row {
    pair: String,
    dim: usize,
    spread: &'static str,
    stats: TransferDistortion,
}

fn main() -> Result<(), GeometryError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let base = if quick {
        TransferSample {
            points: 500,
            queries: 100,
            ..TransferSample::default()
        }
    } else {
        TransferSample::default()
    };
    println!(
        "{} points, {} queries, k = {}, seed {}, curvature 1",
        base.points, base.queries, base.k, base.seed
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for from_kind in KINDS {
        for to_kind in KINDS {
            if from_kind == to_kind {
                continue;
            }
            for dim in DIMS {
                let (from, to) = (manifold(from_kind, dim, 1.0)?, manifold(to_kind, dim, 1.0)?);
                for (spread, radius) in SPREADS {
                    let sample = TransferSample {
                        max_radius: radius_for(from_kind, radius),
                        ..base.clone()
                    };
                    rows.push(Row {
                        pair: format!("{} → {}", short(from_kind), short(to_kind)),
                        dim,
                        spread,
                        stats: measure_transfer(&from, &to, &sample)?,
                    });
                }
            }
        }
    }
    // Same kind, different curvature: transform uses the tangent chart.
    for (from_kind, to_kind, c_to) in [
        ("poincare", "poincare", 2.0),
        ("hyperboloid", "poincare", 0.5),
        ("sphere", "sphere", 4.0),
    ] {
        for dim in DIMS {
            let (from, to) = (
                manifold(from_kind, dim, 1.0)?,
                manifold(to_kind, dim, c_to)?,
            );
            for (spread, radius) in SPREADS {
                let sample = TransferSample {
                    max_radius: radius_for(from_kind, radius),
                    ..base.clone()
                };
                rows.push(Row {
                    pair: format!("{}₁ → {}_{c_to}", short(from_kind), short(to_kind)),
                    dim,
                    spread,
                    stats: measure_transfer(&from, &to, &sample)?,
                });
            }
        }
    }
    print_summary(&rows, base.points);
    print_full(&rows);
    println!("\n{:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_summary(rows: &[Row], points: usize) {
    println!(
        "\nrecall@10 · with 5× over-fetch and re-ranking by source distance \
         (refused points in %, where any)\n"
    );
    let mut head = String::from("| pair |");
    let mut rule = String::from("|---|");
    for dim in DIMS {
        for (spread, _) in SPREADS {
            head.push_str(&format!(" n={dim} {spread} |"));
            rule.push_str("---:|");
        }
    }
    println!("{head}\n{rule}");
    for chunk in rows.chunks(DIMS.len() * SPREADS.len()) {
        let mut line = format!("| {} |", chunk[0].pair);
        for r in chunk {
            line.push_str(&format!(
                " {:.3} · {:.3}",
                r.stats.recall, r.stats.recall_overfetched
            ));
            if r.stats.refused_points > 0 {
                let total = r.stats.refused_points as f64;
                line.push_str(&format!(" ({:.0} %)", 100.0 * total / points as f64));
            }
            line.push_str(" |");
        }
        println!("{line}");
    }
}

fn print_full(rows: &[Row]) {
    println!(
        "\n| pair | n | spread | recall@10 | over-fetched | Spearman ρ | d_to/d_from p1 | median | p99 | refused points | refused queries |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let s = &r.stats;
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.4} | {:.3} | {:.3} | {:.3} | {} | {} |",
            r.pair,
            r.dim,
            r.spread,
            s.recall,
            s.recall_overfetched,
            s.spearman,
            s.ratio_low,
            s.ratio_median,
            s.ratio_high,
            s.refused_points,
            s.refused_queries
        );
    }
}
