//! The squared Euclidean distance an `f32` graph ranks by.
//!
//! usearch's own `f32` kernel (NumKong's) widens every coordinate to `f64`
//! and sums on one chain of dependent adds: 40–55 % of a 128-d query's time
//! in the large bench. A graph only ranks (results are re-ranked by the
//! exact `f64` distance), so an `f32` sum is enough, as in hnswlib. This one
//! sums on 32 independent lanes (two AVX-512 or four AVX2 registers), then
//! adds the lanes up. The widest kernel the CPU runs is picked at run time
//! (each graph asks when it is made; the detection is cached).

/// A kernel: `Σ (a_i - b_i)^2` of two slices of the same length.
pub type L2sq = fn(&[f32], &[f32]) -> f32;

/// The fastest kernel this CPU runs (public for the benches, which time
/// it beside usearch's own).
pub fn l2sq_f32() -> L2sq {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return x86::l2sq_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return x86::l2sq_avx2;
        }
    }
    l2sq_portable
}

/// The baseline kernel (SSE2 on x86-64): 16 partial sums, then one for
/// the leftovers.
fn l2sq_portable(a: &[f32], b: &[f32]) -> f32 {
    let (wide_a, tail_a) = a.as_chunks::<16>();
    let (wide_b, tail_b) = b.as_chunks::<16>();
    let mut acc = [0.0f32; 16];
    for (p, q) in wide_a.iter().zip(wide_b) {
        for i in 0..16 {
            let d = p[i] - q[i];
            acc[i] += d * d;
        }
    }
    // The lanes by halves: a tree, not a chain of 16 dependent adds.
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    let mut sum = acc[0];
    for (p, q) in tail_a.iter().zip(tail_b) {
        sum += (p - q) * (p - q);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    pub(super) fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `l2sq_f32` hands this kernel out only after
        // `is_x86_feature_detected!("avx512f")`.
        unsafe { avx512(a, b) }
    }

    pub(super) fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `l2sq_f32` hands this kernel out only after detecting
        // both `avx2` and `fma`.
        unsafe { avx2(a, b) }
    }

    /// Two 16-lane sums, 32 coordinates a step; the last 0–15 through a
    /// masked load (lanes past the end read as 0 on both sides).
    #[target_feature(enable = "avx512f")]
    fn avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY (every load below): it reads lanes `i..i + 16` (`i + 32`
        // for the pair), all below `n`, or, masked, only those below `n`.
        while i + 32 <= n {
            let (a0, b0, a1, b1) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i)),
                    _mm512_loadu_ps(pb.add(i)),
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                )
            };
            let (d0, d1) = (_mm512_sub_ps(a0, b0), _mm512_sub_ps(a1, b1));
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            s1 = _mm512_fmadd_ps(d1, d1, s1);
            i += 32;
        }
        while i < n {
            let left = (n - i).min(16);
            let mask: __mmask16 = ((1u32 << left) - 1) as __mmask16;
            let (a0, b0) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask, pa.add(i)),
                    _mm512_maskz_loadu_ps(mask, pb.add(i)),
                )
            };
            let d0 = _mm512_sub_ps(a0, b0);
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            i += left;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(s0, s1))
    }

    /// Four 8-lane sums, 32 coordinates a step, then 8 at a time; the
    /// last 0–7 one by one.
    #[target_feature(enable = "avx2,fma")]
    fn avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (every load below): it reads lanes `i..i + 8` with
        // `i + 8 <= n`.
        while i + 32 <= n {
            for (j, sj) in s.iter_mut().enumerate() {
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_ps(pa.add(i + 8 * j)),
                        _mm256_loadu_ps(pb.add(i + 8 * j)),
                    )
                };
                let d = _mm256_sub_ps(x, y);
                *sj = _mm256_fmadd_ps(d, d, *sj);
            }
            i += 32;
        }
        while i + 8 <= n {
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            let d = _mm256_sub_ps(x, y);
            s[0] = _mm256_fmadd_ps(d, d, s[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_movehdup_ps(v));
        let mut sum = _mm_cvtss_f32(v);
        for (p, q) in a[i..n].iter().zip(&b[i..n]) {
            sum += (p - q) * (p - q);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this machine can run, with its name.
    fn kernels() -> Vec<(&'static str, L2sq)> {
        let mut out: Vec<(&'static str, L2sq)> = vec![("portable", l2sq_portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(("avx512", x86::l2sq_avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                out.push(("avx2", x86::l2sq_avx2));
            }
        }
        out
    }

    #[test]
    fn every_kernel_is_the_squared_distance_at_every_length() {
        // Lengths across every kernel's chunk widths (32, 16, 8) and tails.
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(7);
        let mut next = || rng.random_range(-2.0f32..2.0);
        for dims in (0..=80).chain([127, 128, 129, 300, 512, 1536]) {
            let a: Vec<f32> = (0..dims).map(|_| next()).collect();
            let b: Vec<f32> = (0..dims).map(|_| next()).collect();
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2))
                .sum();
            for (name, k) in kernels() {
                let got = f64::from(k(&a, &b));
                assert!(
                    (got - exact).abs() <= 1e-5 * exact.max(1e-30),
                    "{name} at {dims} dims: {got} against {exact}"
                );
                assert_eq!(k(&a, &a), 0.0, "{name} at {dims} dims: a point from itself");
            }
        }
    }

    #[test]
    fn the_picked_kernel_is_one_of_them() {
        let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 6.0, 3.0]);
        assert_eq!(l2sq_f32()(&a, &b), 25.0);
    }
}
