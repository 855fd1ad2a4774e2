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
        "postgres://db/tessera?user=tessera&password=***"
    );
    assert_eq!(
        redact_url("postgres://tessera@db/tessera?sslmode=verify-full"),
        "postgres://tessera@db/tessera?sslmode=verify-full"
    );
    assert_eq!(
        redact_url("postgresql://user:pa@ss@host/db"),
        "postgresql://user:***@host/db"
    );
    assert_eq!(
        redact_url("postgres://db/t?PASSWORD=hunter2"),
        "postgres://db/t?PASSWORD=***"
    );
    assert_eq!(
        redact_url("postgres://db/t?pass%77ord=hunter2"),
        "postgres://db/t?pass%77ord=***"
    );
    assert_eq!(
        redact_url("postgres://db/t?password=hun&ter2&sslmode=require"),
        "postgres://db/t?password=***"
    );
    for not_a_url in [
        "host=db user=t password=hunter2",
        "postgres:/u:hunter2@h/db",
    ] {
        assert!(!redact_url(not_a_url).contains("hunter2"), "{not_a_url}");
    }
    assert_eq!(
        redact_url("sqlite:///data/a:b@c.db"),
        "sqlite:///data/a:b@c.db"
    );
}

#[test]
fn every_purge_statement_has_exactly_one_parameter() {
    // Each statement is bound one cutoff, `$1` in both dialects.
    for (sql, _) in crate::sqlite::sql::tokens::PURGES {
        assert_eq!(sql.matches('$').count(), 1, "{sql}");
        assert_eq!(sql.matches("$1").count(), 1, "{sql}");
        assert!(!sql.contains('?'), "{sql}");
    }
}
