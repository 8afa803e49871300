//! Comparisons with a secret (a cached token, an exact header value a policy requires) whose
//! time tells a client nothing about the secret's bytes.

/// Whether `presented` holds exactly the bytes of `secret`. Every word of the secret is read and
/// compared whatever `presented` holds, so the time depends on the secret's length alone: a
/// guess cannot time how much of the secret it matched, and one of another length is compared
/// with the secret itself, as long. Eight bytes at a time: byte by byte, the compare of a
/// cached token was a third of a cached request's own work.
pub fn equals_secret(secret: &[u8], presented: &[u8]) -> bool {
    let same_length = secret.len() == presented.len();
    let other = if same_length { presented } else { secret };
    let mut difference = u64::from(!same_length);
    let mut secret_words = secret.chunks_exact(8);
    let mut other_words = other.chunks_exact(8);
    for (a, b) in (&mut secret_words).zip(&mut other_words) {
        difference |= full_word(a) ^ full_word(b);
    }
    difference |= tail_word(secret_words.remainder()) ^ tail_word(other_words.remainder());
    std::hint::black_box(difference) == 0
}

/// Eight bytes as one word (`chunks_exact(8)` gives no other length).
fn full_word(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_le_bytes)
}

/// Fewer than eight bytes as one word, zeros after them.
fn tail_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    for (slot, byte) in word.iter_mut().zip(bytes) {
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
