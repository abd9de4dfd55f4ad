//! Admin bearer tokens: generation (`mesa --new-token`) and digests.
//!
//! The config stores only the SHA-256 digest of a token, so a leaked config file grants
//! nothing. Tokens carry 256 bits from the OS CSPRNG and a `mesa_` prefix that secret
//! scanners can match.

use sha2::{Digest, Sha256};

/// A new token and the digest to put in the config.
#[derive(Debug)]
pub struct NewToken {
    /// The bearer token; shown once.
    pub token: crate::secret::Secret,
    /// Lowercase hex SHA-256 of the token.
    pub sha256_hex: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// SHA-256 of a token's text.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Generates a token from 32 random bytes.
pub fn generate() -> Result<NewToken, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let token = format!("mesa_{}", hex(&raw));
    let sha256_hex = hex(&digest(&token));
    Ok(NewToken {
        token: crate::secret::Secret::new(token),
        sha256_hex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_config_decoding() {
        let t = generate().expect("os randomness");
        assert!(t.token.expose().starts_with("mesa_"));
        assert_eq!(t.token.expose().len(), 5 + 64);
        let decoded = crate::config::decode_sha256(&t.sha256_hex).expect("64 hex chars");
        assert_eq!(decoded, digest(t.token.expose()));
    }

    #[test]
    fn known_sha256() {
        assert_eq!(
            hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
