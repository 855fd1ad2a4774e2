//! Password policy and argon2id hashing.
//!
//! Parameters are the OWASP minimum for argon2id: 19 MiB of memory, two passes, one lane.
//! Hashes are PHC strings, so the parameters travel with each hash and can be raised later
//! without invalidating stored passwords.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::{Error, ErrorKind, ParseError};

/// The shortest password accepted for a new account, in characters.
pub const MIN_CHARS: usize = 8;
/// The longest password accepted for a new account, in characters.
pub const MAX_CHARS: usize = 128;
/// The longest password ever hashed, in bytes. A longer one cannot belong to any account,
/// so it is refused before hashing: an attacker cannot make the server hash megabytes.
pub const MAX_BYTES: usize = 4 * MAX_CHARS;

/// An argon2id hash, with the current parameters, of a random password nobody knows.
///
/// Verifying a password against it costs what verifying a real hash costs, so a login with
/// an unknown username takes as long as one with a wrong password. A test keeps its
/// parameters equal to those of [`hash`].
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$sRREHSS1/MdkOgqihzKo3Q$cPpV2ICQICeDOCO5h40UBFgcDfqF/gEOCJx411OUFPQ";

fn hasher() -> Result<Argon2<'static>, Error> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| ErrorKind::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks a new password against the policy: 8 to 128 characters, not only whitespace,
/// and not the username.
pub fn check_policy(password: &str, username: &str) -> Result<(), ParseError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(ParseError::new(
            "password",
            format!("must be at least {MIN_CHARS} characters"),
        ));
    }
    if chars > MAX_CHARS {
        return Err(ParseError::new(
            "password",
            format!("must be at most {MAX_CHARS} characters"),
        ));
    }
    if password.trim().is_empty() {
        return Err(ParseError::new("password", "may not be only whitespace"));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(ParseError::new("password", "may not be the username"));
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt, as a PHC string.
///
/// This takes tens of milliseconds on purpose: call it off the async workers.
pub fn hash(password: &str) -> Result<String, Error> {
    if password.len() > MAX_BYTES {
        return Err(ErrorKind::PasswordHash("password too long".into()).into());
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ErrorKind::PasswordHash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. Malformed hashes and over-long
/// passwords never match.
///
/// This takes tens of milliseconds on purpose: call it off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match hasher() {
        Ok(argon) => argon.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// The memory argon2 works in: one 19 MiB buffer for the current parameters. A thread that
/// verifies many passwords keeps one and passes it to [`verify_in`], instead of allocating
/// (and leaving to the allocator) a fresh buffer per verification.
pub type Memory = Vec<argon2::Block>;

/// [`verify`], computing in `memory` (grown to what the hash's parameters need, then
/// reused). The result is the same; only the allocation differs.
pub fn verify_in(password: &str, phc: &str, memory: &mut Memory) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), argon2::Block::default());
    }
    let expected = expected.as_bytes();
    let mut computed = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut memory[..])
        .is_err()
    {
        return false;
    }
    bool::from(subtle::ConstantTimeEq::ct_eq(computed.as_slice(), expected))
}

#[cfg(test)]
#[path = "tests/password.rs"]
mod tests;
