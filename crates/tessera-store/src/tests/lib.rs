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

#[test]
fn passwords_with_url_delimiters_or_in_the_query_are_hidden_too() {
    assert_eq!(
        redact_url("postgres://tessera:ab/c?d#e@db:5432/tessera"),
        "postgres://tessera:***@db:5432/tessera"
    );
    assert_eq!(
        redact_url("postgres://db/tessera?user=tessera&password=hunter2&sslmode=require"),
        "postgres://db/tessera?user=tessera&password=***&sslmode=require"
    );
    assert_eq!(
        redact_url("postgres://tessera@db/tessera?sslmode=verify-full"),
        "postgres://tessera@db/tessera?sslmode=verify-full"
    );
}
