//! [`Permissions`]: which namespaces a model may read and write, by glob.

use serde::{Deserialize, Serialize};

use crate::contract::Extra;

/// `permissions`: what a model may do beyond its own messages.
///
/// Namespace lists hold glob patterns matched against whole namespace
/// names: `*` matches any run of characters (also none, and also `:` or
/// `/`), `?` exactly one character, everything else itself. `"*"` is every
/// namespace; `"team-*"` is `team-a`, `team-` and `team-a:spine`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Patterns of the namespaces it may read and search.
    pub read_namespaces: Vec<String>,
    /// Patterns of the namespaces it may write (at least one).
    pub write_namespaces: Vec<String>,
    /// Whether it may broadcast to every model.
    pub broadcast: bool,
    /// Whether it may query other models directly.
    pub query_other_models: bool,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Permissions {
    /// Whether some `read_namespaces` pattern matches `namespace`.
    pub fn can_read(&self, namespace: &str) -> bool {
        self.read_namespaces
            .iter()
            .any(|p| glob_match(p, namespace))
    }

    /// Whether some `write_namespaces` pattern matches `namespace`.
    pub fn can_write(&self, namespace: &str) -> bool {
        self.write_namespaces
            .iter()
            .any(|p| glob_match(p, namespace))
    }
}

/// Whether `pattern` (with `*` and `?`) matches all of `text`.
///
/// The classic greedy matcher: on a mismatch, let the last `*` swallow one
/// more character and retry. `O(|pattern| · |text|)` at worst; no
/// allocation and no recursion, so it is cheap enough for every message.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the pattern resumes after the last `*`, and the text position
    // that `*` currently stops at.
    let mut star: Option<(usize, usize)> = None;
    while let Some((tc, tn)) = char_at(text, ti) {
        match char_at(pattern, pi) {
            Some(('*', n)) => {
                star = Some((pi + n, ti));
                pi += n;
            }
            Some((c, n)) if c == '?' || c == tc => {
                pi += n;
                ti += tn;
            }
            _ => match star {
                Some((after, stop)) => {
                    let stop = stop + char_at(text, stop).map_or(1, |(_, n)| n);
                    star = Some((after, stop));
                    (pi, ti) = (after, stop);
                }
                None => return false,
            },
        }
    }
    pattern
        .get(pi..)
        .is_some_and(|rest| rest.chars().all(|c| c == '*'))
}

/// The character at byte offset `i` of `s` and its length in bytes.
fn char_at(s: &str, i: usize) -> Option<(char, usize)> {
    let c = s.get(i..)?.chars().next()?;
    Some((c, c.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_whole_names() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything:at/all", true),
            ("team-*", "team-a", true),
            ("team-*", "team-", true),
            ("team-*", "team", false),
            ("team-*", "xteam-a", false),
            ("team-?", "team-a", true),
            ("team-?", "team-ab", false),
            ("*-spine", "model-1-spine", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact", "exact", true),
            ("exact", "exac", false),
            ("", "", true),
            ("", "a", false),
            ("ü?", "üß", true),
            ("**a", "a", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p:?} vs {t:?}");
        }
    }
}
