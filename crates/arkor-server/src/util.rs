//! Small helpers: clocks, ids, token hashing, file digests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T10:00:00.000Z`.
pub fn iso(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `<prefix>_<20 lowercase hex chars>` from the OS random generator.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 10] = rand::rng().random();
    format!("{prefix}_{}", hex(&bytes))
}

/// `2 * n` lowercase hex chars from `n` random bytes.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    hex(&bytes)
}

/// A bearer token: `ark_` + 64 hex chars (32 random bytes).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("ark_{}", hex(&bytes))
}

/// What the store keeps instead of a token.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 and size of a file.
pub fn file_digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Hex SHA-256 naming a list of files' contents: one file's own digest, or for several,
/// the digest of their digests in order (one per line), so a reordered or changed file
/// changes it.
pub fn files_digest(paths: &[PathBuf]) -> anyhow::Result<String> {
    let digests = paths
        .iter()
        .map(|p| {
            file_digest(p)
                .map(|(_, d)| d)
                .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(match digests.as_slice() {
        [one] => one.clone(),
        many => sha256_hex(many.join("\n").as_bytes()),
    })
}

/// Lowercase hex of bytes (a digest).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
