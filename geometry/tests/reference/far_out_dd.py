#!/usr/bin/env python3
"""Reference values for geometry/tests/dd_hyperboloid.rs: the double-double
hyperboloid (`DdHyperboloid`) against mpmath at 160 significant digits, from
the very double-double inputs the test feeds the crate.

Run from the repository root: python3 geometry/tests/reference/far_out_dd.py
(needs mpmath; deterministic: fixed seed). It rewrites
geometry/tests/reference/far_out_dd.txt and far_out_dd_means.txt.

Layout of a point or tangent vector of H^n (n = DIM): 2(n + 1) numbers,
first the high parts of the n + 1 ambient coordinates (time first), then
their low parts: [x0_hi, x1_hi, ..., xn_hi, x0_lo, x1_lo, ..., xn_lo]; each
pair is normalised (hi = fl(hi + lo)) and stands for the exact sum hi + lo.
The time coordinate is implied by the spatial ones, as the crate defines it
(x0 = sqrt(1 + |x_s|^2) for points, v0 = <x_s, v_s>/x0 for tangent vectors).

far_out_dd.txt, one case a line, fields separated by ';', vectors by spaces:
r;s;x;y;distance;log;v;exp;midpoint;u;transport
- x: a point at hyperbolic radius r (rounded to double-double, and from then
  on an exact input); y: the exact exp_x of a step of length s in a random
  direction, rounded to double-double;
- distance = d(x, y), as a (hi, lo) pair; log = log_x(y);
- v = log rounded to double-double (an input), exp = exp_x(v) (the log/exp
  round trip, from the rounded log);
- midpoint = the point half way from x to y;
- u: a unit tangent vector at x (an input), transport = its parallel
  transport from x to y.
Every result is the exact value for the inputs, rounded to double-double.
Curvature -1, dimension 5.

far_out_dd_means.txt: per line r;weights;mean;x_1;...;x_25: 25 points about 1
apart around a centre at radius r (rounded to double-double), their random
weights and their weighted Frechet mean (Karcher flow at 160 digits to a
gradient of 1e-60).
"""
import random

from mpmath import mp, mpf, sqrt, cosh, sinh, acosh
from mpmath.libmp import to_float

mp.dps = 160
DIM = 5
RADII = [5, 30, 50]
SEPARATIONS = [1e-30, 1e-25, 1e-20, 1e-18, 1e-15, 1e-12, 1e-10, 1e-8, 1e-6, 1e-3, 0.1, 1.0, 10.0]


def f64(v):
    """The f64 nearest to v (mpmath's float() rounds towards zero)."""
    return to_float(mpf(v)._mpf_, rnd="n")


def dd(v):
    """The double-double nearest to v: a normalised pair (hi, lo)."""
    v = mpf(v)
    hi = f64(v)
    lo = f64(v - mpf(hi))
    s = hi + lo  # renormalise (fast two-sum, |hi| >= |lo|)
    return s, lo - (s - hi)


def to_layout(vec):
    pairs = [dd(a) for a in vec]
    return [p[0] for p in pairs] + [p[1] for p in pairs]


def from_layout(lay):
    n1 = len(lay) // 2
    return [mpf(lay[i]) + mpf(lay[n1 + i]) for i in range(n1)]


def dot(a, b):
    return sum(p * q for p, q in zip(a, b))


def lift(xs):
    return [sqrt(1 + dot(xs, xs))] + list(xs)


def mink(x, y):
    return -x[0] * y[0] + dot(x[1:], y[1:])


def tangent(x, vs):
    """The tangent vector at x with spatial part vs (time implied)."""
    return [dot(x[1:], vs) / x[0]] + list(vs)


def point_dd(x):
    """x rounded to double-double: spatial parts rounded, time implied."""
    xs = from_layout(to_layout(x[1:]))
    return lift(xs)


def tangent_dd(x, v):
    vs = from_layout(to_layout(v[1:]))
    return tangent(x, vs)


def layout_point(x):
    return to_layout(lift(x[1:]))


def layout_tangent(x, v):
    return to_layout(tangent(x, v[1:]))


def hyp_dist(x, y):
    return acosh(max(-mink(x, y), mpf(1)))


def hyp_log(x, y):
    d = hyp_dist(x, y)
    if d == 0:
        return [mpf(0)] * len(x)
    w = [q + mink(x, y) * p for p, q in zip(x, y)]
    return [d / sinh(d) * p for p in w]


def hyp_exp(x, v):
    t = sqrt(max(mink(v, v), 0))
    if t == 0:
        return list(x)
    y = [cosh(t) * p + sinh(t) / t * q for p, q in zip(x, v)]
    return lift(y[1:])


def hyp_transport(x, y, v):
    k = mink(y, v) / (1 - mink(x, y))
    return [vi + k * (xi + yi) for vi, xi, yi in zip(v, x, y)]


def random_unit_tangent(rng, x):
    w = [mpf(0)] + [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    wt = [p + mink(x, w) * q for p, q in zip(w, x)]  # projection onto T_x
    wn = sqrt(mink(wt, wt))
    return [p / wn for p in wt]


def point_at(rng, r):
    d = [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    dn = sqrt(dot(d, d))
    return point_dd(lift([sinh(mpf(r)) * p / dn for p in d]))


def case(rng, r, s):
    x = point_at(rng, r)
    step = [mpf(s) * p for p in random_unit_tangent(rng, x)]
    y = point_dd(hyp_exp(x, step))
    lg = hyp_log(x, y)
    v = tangent_dd(x, lg)
    ex = hyp_exp(x, v)
    mid = hyp_exp(x, [p / 2 for p in lg])
    u = tangent_dd(x, random_unit_tangent(rng, x))
    tr = hyp_transport(x, y, u)
    return [
        layout_point(x),
        layout_point(y),
        list(dd(hyp_dist(x, y))),
        layout_tangent(x, lg),
        layout_tangent(x, v),
        layout_point(ex),
        layout_point(mid),
        layout_tangent(x, u),
        layout_tangent(y, tr),
    ]


def hyp_mean(points, weights):
    """Karcher flow from the first point to a gradient of 1e-60, each step
    scaled by 1 / the mean Hessian across the geodesics (d coth d)."""
    p = list(points[0])
    total = sum(weights)
    for _ in range(5000):
        g = [mpf(0)] * len(p)
        kappa = mpf(0)
        for x, w in zip(points, weights):
            lg = hyp_log(p, x)
            d = hyp_dist(p, x)
            kappa += w / total * (d / mp.tanh(d) if d > 0 else 1)
            g = [a + w / total * b for a, b in zip(g, lg)]
        if sqrt(max(mink(g, g), 0)) < mpf("1e-60"):
            return p
        p = hyp_exp(p, [a / kappa for a in g])
    raise RuntimeError("no convergence")


def mean_case(rng, r):
    """25 points about 1 apart around a centre at radius r, random weights."""
    centre = point_at(rng, r)
    pts = []
    for _ in range(25):
        t = random_unit_tangent(rng, centre)
        length = abs(mpf(rng.gauss(0, 0.5))) + mpf("0.5")
        pts.append(point_dd(hyp_exp(centre, [length * p for p in t])))
    weights = [float(rng.uniform(0.1, 10)) for _ in range(25)]
    m = hyp_mean(pts, [mpf(w) for w in weights])
    return [weights, layout_point(m)] + [layout_point(p) for p in pts]


def fmt(vec):
    return " ".join(repr(float(a)) for a in vec)


def main():
    rng = random.Random(20261207)
    lines = []
    for r in RADII:
        for s in SEPARATIONS:
            for _ in range(2):
                fields = case(rng, r, s)
                lines.append(";".join([repr(r), repr(s)] + [fmt(f) for f in fields]))
    with open("geometry/tests/reference/far_out_dd.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    lines = []
    for r in RADII:
        fields = mean_case(rng, r)
        lines.append(";".join([repr(r)] + [fmt(f) for f in fields]))
    with open("geometry/tests/reference/far_out_dd_means.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
