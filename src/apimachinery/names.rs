//! generateName: the random suffix the Go apiserver appends.
//!
//! Same shape as Go's `names.SimpleNameGenerator`: the prefix cut to 58 bytes plus 5 characters
//! from an alphabet without vowels (no accidental words) and without look-alikes (0/o, 1/l, 3/e).

use rand::Rng;

/// Longest prefix kept, so that prefix + suffix fits a 63-character name.
pub const MAX_PREFIX_LEN: usize = 58;
/// Length of the random suffix.
pub const SUFFIX_LEN: usize = 5;
/// Go's `utilrand` alphabet.
pub const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `base` (truncated to 58 bytes, at a char boundary) followed by 5 random characters.
pub fn generate(base: &str) -> String {
    let mut cut = base.len().min(MAX_PREFIX_LEN);
    // Go cuts bytes blindly; backing up to a char boundary keeps the name valid UTF-8.
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rng = rand::rng();
    let mut out = String::with_capacity(cut + SUFFIX_LEN);
    out.push_str(&base[..cut]);
    for _ in 0..SUFFIX_LEN {
        out.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffix_ok(s: &str) -> bool {
        s.len() == SUFFIX_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
    }

    #[test]
    fn short_base_kept_whole() {
        let n = generate("my-flunder-");
        assert_eq!(n.len(), "my-flunder-".len() + 5);
        assert!(n.starts_with("my-flunder-"));
        assert!(suffix_ok(&n["my-flunder-".len()..]), "{n}");
        assert!(suffix_ok(&generate("")));
    }

    #[test]
    fn long_base_truncated_to_58() {
        let base = "a".repeat(100);
        let n = generate(&base);
        assert_eq!(n.len(), 63);
        assert_eq!(&n[..58], &base[..58]);
        assert!(suffix_ok(&n[58..]));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        // 57 ASCII bytes then a 2-byte char straddling byte 58.
        let base = format!("{}é-tail", "a".repeat(57));
        let n = generate(&base);
        assert_eq!(n.len(), 57 + 5);
        assert!(n.starts_with(&"a".repeat(57)));
        assert!(suffix_ok(&n[57..]));
    }

    #[test]
    fn suffixes_vary() {
        let all: std::collections::HashSet<String> = (0..50).map(|_| generate("x-")).collect();
        assert!(
            all.len() > 40,
            "27^5 possibilities; 50 draws should rarely collide"
        );
    }
}
