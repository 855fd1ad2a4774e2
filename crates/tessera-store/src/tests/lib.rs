//! Unit tests of `lib`.

use super::redact_url;

#[test]
fn passwords_never_reach_messages() {
    assert_eq!(
        redact_url("postgres://tessera:hunter2@db:5432/tessera"),
        "postgres://tessera:***@db:5432/tessera"
    );
    assert_eq!(redact_url("postgres://db/tessera"), "postgres://db/tessera");
    assert_eq!(redact_url("sqlite://tessera.db"), "sqlite://tessera.db");
}
