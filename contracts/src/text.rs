//! The built-in deterministic text encoder.

/// Turns text into a unit vector by feature hashing, so text with no
/// embedding of its own (a text-only message, a documentation section) is
/// still searchable by meaning — lexical meaning: texts that share words and
/// word pairs land close together.
///
/// Words are lower-cased runs of letters and digits, less single letters and
/// a short list of English function words ("the", "and", "how", …) that
/// carry no meaning of their own. Each word and each pair
/// of neighbouring words is hashed (FNV-1a, 64-bit: the same on every
/// platform and in every release) to a coordinate and a sign, and adds
/// `1 + ln(count)` there (pairs with half that weight). The result is scaled
/// to length 1: a point of the unit sphere `S^{dim-1}`. Text with no words
/// maps to the first basis vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoder {
    dim: usize,
}

impl TextEncoder {
    /// An encoder into `dim` coordinates (`dim >= 2`; 256 is a good default).
    pub fn new(dim: usize) -> Option<Self> {
        (dim >= 2).then_some(Self { dim })
    }

    /// The number of coordinates of the vectors it makes.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The unit vector of `text`.
    pub fn encode(&self, text: &str) -> Vec<f64> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() > 1 && !STOP_WORDS.contains(w))
            .collect();
        let mut counts: std::collections::HashMap<u64, (f64, f64)> = Default::default();
        for w in &words {
            counts.entry(fnv1a(w.as_bytes(), 0)).or_insert((0.0, 1.0)).0 += 1.0;
        }
        for pair in words.windows(2) {
            let h = fnv1a(pair[1].as_bytes(), fnv1a(pair[0].as_bytes(), 0x9e37_79b9));
            counts.entry(h).or_insert((0.0, 0.5)).0 += 1.0;
        }
        let mut v = vec![0.0; self.dim];
        for (h, (count, weight)) in counts {
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % self.dim as u64) as usize] += sign * weight * (1.0 + count.ln());
        }
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if n == 0.0 {
            v[0] = 1.0;
        } else {
            v.iter_mut().for_each(|a| *a /= n);
        }
        v
    }
}

impl Default for TextEncoder {
    fn default() -> Self {
        Self { dim: 256 }
    }
}

/// Function words dropped before hashing (sorted, for the reader).
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of",
    "on", "or", "our", "she", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "to", "too", "up", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your",
];

pub(crate) fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn encodings_are_unit_deterministic_and_lexical() {
        let e = TextEncoder::default();
        let a = e.encode("Hyperbolic space embeds hierarchies well");
        assert!((a.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(a, e.encode("hyperbolic SPACE embeds hierarchies, well!"));
        let near = e.encode("hierarchies embed well in hyperbolic space");
        let far = e.encode("the cat sat on the mat");
        assert!(
            cos(&a, &near) > 0.5 && cos(&a, &far) < 0.3,
            "{} {}",
            cos(&a, &near),
            cos(&a, &far)
        );
        assert_eq!(e.encode("  ,.; ")[0], 1.0);
        assert_eq!(
            e.encode("how is it"),
            e.encode(""),
            "function words alone carry nothing"
        );
        assert!(TextEncoder::new(1).is_none());
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // FNV-1a test vectors: any change here changes every stored encoding.
        assert_eq!(fnv1a(b"", 0), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a", 0), 0xaf63_dc4c_8601_ec8c);
    }
}
