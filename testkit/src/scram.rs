//! The client side of one SCRAM-SHA-256 login (4096 rounds of HMAC-SHA-256), with the crate
//! Mesa's driver uses, against a made-up server-first message: no server needed. Shared by
//! `benches/scrape.rs` and `examples/fleet_bench/`.

use base64::Engine as _;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// Runs the client's proof computation for `password` and returns the exchange.
pub fn client_proof(password: &[u8]) -> std::io::Result<ScramSha256> {
    let salt = base64::engine::general_purpose::STANDARD.encode(b"sixteen byte slt");
    let mut scram = ScramSha256::new(password, ChannelBinding::unsupported());
    let first = String::from_utf8_lossy(scram.message()).into_owned();
    // The nonce never holds a comma, so the first ",r=" starts it.
    let nonce = first
        .split_once(",r=")
        .map(|(_, n)| n.to_owned())
        .ok_or_else(|| std::io::Error::other("no client nonce"))?;
    scram.update(format!("r={nonce}server,s={salt},i=4096").as_bytes())?;
    Ok(scram)
}
