//! The text form of a vendor public key, shared by `build.rs` (which validates the keys of
//! `SEATGATE_VENDOR_KEYS`) and `src/signed.rs`, so a key the build accepts is exactly a
//! key the library accepts at run time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Prefix of a public key's text form: `seatgate-ed25519-public:<base64 of 32 bytes>`.
pub const PUBLIC_PREFIX: &str = "seatgate-ed25519-public:";
/// Prefix of a secret signing key's text form: `seatgate-ed25519-secret:<base64 seed>`.
pub const SECRET_PREFIX: &str = "seatgate-ed25519-secret:";

/// Decodes a public key's text form (surrounding whitespace allowed) into its 32 bytes,
/// refusing anything that is not a usable Ed25519 public key. The error is a sentence
/// fragment that the caller prefixes with where the key came from.
pub fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.starts_with(SECRET_PREFIX) {
        return Err(format!(
            "this is a secret signing key ({SECRET_PREFIX}...), not a public key: use the .pub file, \
             and keep the .key file private"
        ));
    }
    // The text is not echoed: a secret pasted by mistake must not end up in a build log.
    let Some(b64) = text.strip_prefix(PUBLIC_PREFIX) else {
        return Err(format!("it is not a seatgate public key: one starts with '{PUBLIC_PREFIX}'"));
    };
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| format!("the part after '{PUBLIC_PREFIX}' is not valid base64 ({e})"))?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!("the public key is {} bytes long; an Ed25519 public key is 32 bytes", bytes.len())
    })?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "the 32 bytes are not a valid Ed25519 public key".to_string())?;
    if key.is_weak() {
        return Err("the public key is a weak (small-order) Ed25519 point and cannot be trusted".to_string());
    }
    Ok(bytes)
}
