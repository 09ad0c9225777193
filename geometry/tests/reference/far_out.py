#!/usr/bin/env python3
"""Reference values for geometry/tests/far_out.rs, computed with mpmath at
80 significant digits from the very f64 inputs the test feeds the crate.

Run from the repository root: python3 geometry/tests/reference/far_out.py
It rewrites geometry/tests/reference/far_out.txt (deterministic: fixed seed).

Each line is one case, fields separated by ';', vectors by spaces:
model;r;s;x;y;distance;log;v;exp;geodesic;u;transport
- x: a point at hyperbolic radius r; y: a point about s from x (both rounded
  to f64, and from then on taken as exact inputs);
- distance = d(x, y), log = log_x(y);
- v = log rounded to f64 (an input), exp = exp_x(v);
- geodesic = the point 0.3 of the way from x to y;
- u: a tangent vector at x (an f64 input), transport = its parallel
  transport from x to y.
The hyperboloid's time coordinates (of points and of tangent vectors) are
implied by the spatial ones, as the crate defines them.
Curvature -1, dimension 5.

It also writes far_out_means.txt: per line model;r;weights;mean;x_1;...;x_25,
25 points about 1 apart around a centre at radius r, their random weights
and their weighted Fréchet mean (Karcher flow at 80 digits to a gradient of
1e-40).
"""
import random
from mpmath import mp, mpf, sqrt, tanh, atanh, cosh, sinh, acosh, log

mp.dps = 80
DIM = 5
RADII = [5, 10, 15, 20, 30]
SEPARATIONS = [1e-10, 1e-6, 0.1, 1.0, 10.0]


def dot(a, b):
    return sum(p * q for p, q in zip(a, b))


def f64(v):
    return [float(a) for a in v]


def mp_vec(v):
    return [mpf(a) for a in v]


# ---- Poincaré ball, c = 1 -------------------------------------------------
def mobius_add(x, y):
    xy, x2, y2 = dot(x, y), dot(x, x), dot(y, y)
    a = 1 + 2 * xy + y2
    b = 1 - x2
    d = 1 + 2 * xy + x2 * y2
    return [(a * p + b * q) / d for p, q in zip(x, y)]


def ball_dist(x, y):
    e2 = dot([p - q for p, q in zip(x, y)], [p - q for p, q in zip(x, y)])
    return acosh(1 + 2 * e2 / ((1 - dot(x, x)) * (1 - dot(y, y))))


def ball_log(x, y):
    u = mobius_add([-p for p in x], y)
    un = sqrt(dot(u, u))
    if un == 0:
        return [mpf(0)] * len(x)
    lam = 2 / (1 - dot(x, x))
    return [2 / lam * atanh(un) * p / un for p in u]


def ball_exp(x, v):
    vn = sqrt(dot(v, v))
    if vn == 0:
        return list(x)
    lam = 2 / (1 - dot(x, x))
    t = tanh(lam * vn / 2)
    return mobius_add(x, [t * p / vn for p in v])


def gyration(u, v, w):
    u2, v2, uv, uw, vw = dot(u, u), dot(v, v), dot(u, v), dot(u, w), dot(v, w)
    a = -uw * v2 + vw + 2 * uv * vw
    b = -vw * u2 - uw
    d = 1 + 2 * uv + u2 * v2
    return [wi + 2 * (a * ui + b * vi) / d for wi, ui, vi in zip(w, u, v)]


def ball_transport(x, y, w):
    g = gyration(y, [-p for p in x], w)
    k = (1 - dot(y, y)) / (1 - dot(x, x))
    return [k * p for p in g]


def ball_case(rng, r, s):
    d = [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    dn = sqrt(dot(d, d))
    x = f64([tanh(mpf(r) / 2) * p / dn for p in d])
    X = mp_vec(x)
    lam = 2 / (1 - dot(X, X))
    while True:
        # Resample steps that would leave what f64 can hold (radius > 36).
        w = [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
        wn = sqrt(dot(w, w))
        step = [mpf(s) * p / wn / lam for p in w]
        y = f64(ball_exp(X, step))
        Y = mp_vec(y)
        if 1 - dot(Y, Y) > 0 and ball_dist([mpf(0)] * DIM, Y) < 36:
            break
    lg = ball_log(X, Y)
    v = f64(lg)
    ex = ball_exp(X, mp_vec(v))
    geo = ball_exp(X, [mpf("0.3") * p for p in lg])
    u = f64([p / wn / lam for p in w[::-1]])
    tr = ball_transport(X, Y, mp_vec(u))
    return [x, y, [ball_dist(X, Y)], lg, v, ex, geo, u, tr]


# ---- hyperboloid, c = 1 (time coordinate first, implied) ------------------
def lift(xs):
    return [sqrt(1 + dot(xs, xs))] + list(xs)


def mink(x, y):
    return -x[0] * y[0] + dot(x[1:], y[1:])


def tangent(x, vs):
    """The tangent vector at x with spatial part vs (time implied)."""
    return [dot(x[1:], vs) / x[0]] + list(vs)


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


def hyp_case(rng, r, s):
    d = [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    dn = sqrt(dot(d, d))
    xs = f64([sinh(mpf(r)) * p / dn for p in d])
    X = lift(mp_vec(xs))
    x = f64(X)
    w = [mpf(0)] + [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    wt = [p + mink(X, w) * q for p, q in zip(w, X)]  # projection onto T_x
    wn = sqrt(mink(wt, wt))
    step = [mpf(s) * p / wn for p in wt]
    Y = lift(mp_vec(f64(hyp_exp(X, step)[1:])))
    y = f64(Y)
    lg = hyp_log(X, Y)
    v = f64(lg)
    ex = hyp_exp(X, tangent(X, mp_vec(v[1:])))
    geo = hyp_exp(X, [mpf("0.3") * p for p in lg])
    u = f64(tangent(X, [p / wn for p in wt[1:][::-1]]))
    # Re-imply the time coordinate of the rounded u, as the crate does.
    U = tangent(X, mp_vec(u[1:]))
    tr = hyp_transport(X, Y, U)
    return [x, y, [hyp_dist(X, Y)], lg, v, ex, geo, u, tr]


# ---- weighted Fréchet means of 25-point clusters --------------------------
def hyp_mean(points, weights):
    """Karcher flow at 80 digits, from the first point, to a gradient of 1e-40,
    each step scaled by 1 / the mean Hessian across the geodesics (d coth d)."""
    p = list(points[0])
    total = sum(weights)
    for _ in range(2000):
        g = [mpf(0)] * len(p)
        kappa = mpf(0)
        for x, w in zip(points, weights):
            lg = hyp_log(p, x)
            d = hyp_dist(p, x)
            kappa += w / total * (d / mp.tanh(d) if d > 0 else 1)
            g = [a + w / total * b for a, b in zip(g, lg)]
        if sqrt(max(mink(g, g), 0)) < mpf("1e-40"):
            return p
        p = hyp_exp(p, [a / kappa for a in g])
    raise RuntimeError("no convergence")


def ball_to_hyp(x):
    g = 1 - dot(x, x)
    return lift([2 * p / g for p in x])


def hyp_to_ball(x):
    return [p / (1 + x[0]) for p in x[1:]]


def mean_case(rng, model, r):
    """25 points about 1 apart around a centre at radius r, random weights."""
    d = [mpf(rng.gauss(0, 1)) for _ in range(DIM)]
    dn = sqrt(dot(d, d))
    centre = lift([sinh(mpf(r)) * p / dn for p in d])
    pts, hyp_pts = [], []
    for _ in range(25):
        w = [mpf(0)] + [mpf(rng.gauss(0, 0.5)) for _ in range(DIM)]
        wt = [p + mink(centre, w) * q for p, q in zip(w, centre)]
        # Direction from the projection, length |w|: about 1.1 on average.
        k = sqrt(dot(w, w)) / sqrt(mink(wt, wt))
        q = hyp_exp(centre, [k * p for p in wt])
        if model == "ball":
            x = f64(hyp_to_ball(q))
            hyp_pts.append(ball_to_hyp(mp_vec(x)))
        else:
            x = f64(q[1:])
            hyp_pts.append(lift(mp_vec(x)))
            x = f64(lift(mp_vec(x)))
        pts.append(x)
    weights = [float(rng.uniform(0.1, 10)) for _ in range(25)]
    m = hyp_mean(hyp_pts, [mpf(w) for w in weights])
    mean = hyp_to_ball(m) if model == "ball" else m
    return [weights, f64(mean)] + pts


def fmt(vec):
    return " ".join(repr(float(a)) for a in vec)


def main():
    rng = random.Random(20261206)
    lines = []
    for model, case in [("ball", ball_case), ("hyperboloid", hyp_case)]:
        for r in RADII:
            for s in SEPARATIONS:
                for _ in range(2):
                    fields = case(rng, r, s)
                    lines.append(";".join([model, repr(r), repr(s)] + [fmt(f) for f in fields]))
    with open("geometry/tests/reference/far_out.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    lines = []
    for model in ["ball", "hyperboloid"]:
        for r in [5, 10, 15, 20, 25, 30]:
            fields = mean_case(rng, model, r)
            lines.append(";".join([model, repr(r)] + [fmt(f) for f in fields]))
    with open("geometry/tests/reference/far_out_means.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
