//! Comparisons with a secret (a cached token, an exact header value a policy requires) whose
//! time tells a client nothing about the secret's bytes.

/// Whether `presented` holds exactly the bytes of `secret`. Every word of the secret is read and
/// compared whatever `presented` holds, so the time depends on the secret's length alone: a
/// guess cannot time how much of the secret it matched. Eight bytes at a time: byte by byte,
/// the compare of a cached token was a third of a cached request's own work.
pub fn equals_secret(secret: &[u8], presented: &[u8]) -> bool {
    // usize is at most 64 bits on every target this builds for.
    let mut difference = (secret.len() ^ presented.len()) as u64;
    for at in (0..secret.len()).step_by(8) {
        difference |= word_at(secret, at) ^ word_at(presented, at);
    }
    std::hint::black_box(difference) == 0
}

/// The eight bytes of `bytes` from `at`, zeros past its end.
fn word_at(bytes: &[u8], at: usize) -> u64 {
    if let Some(word) = bytes.get(at..at.saturating_add(8)) {
        if let Ok(word) = <[u8; 8]>::try_from(word) {
            return u64::from_le_bytes(word);
        }
    }
    let mut word = [0u8; 8];
    let tail = bytes.get(at..).unwrap_or_default();
    for (slot, byte) in word.iter_mut().zip(tail) {
        *slot = *byte;
    }
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        let text: Vec<u8> = (1..=40u8).collect();
        for len in 0..text.len() {
            let secret = &text[..len];
            assert!(equals_secret(secret, secret), "len {len}");
            for at in 0..len {
                let mut other = secret.to_vec();
                other[at] ^= 0x80;
                assert!(!equals_secret(secret, &other), "len {len}, byte {at}");
            }
            // Longer and shorter, also when the difference is only zeros the padding could hide.
            assert!(!equals_secret(secret, &text[..len + 1]), "len {len} + 1");
            let mut zero_padded = secret.to_vec();
            zero_padded.push(0);
            assert!(!equals_secret(secret, &zero_padded), "len {len} + NUL");
            assert!(
                !equals_secret(&zero_padded, secret),
                "len {len} + NUL, reversed"
            );
            if len > 0 {
                assert!(!equals_secret(secret, &secret[..len - 1]), "len {len} - 1");
            }
        }
        assert!(!equals_secret(b"", b"x"));
        assert!(!equals_secret(b"x", b""));
    }
}
