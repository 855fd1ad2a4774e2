use tessera_store::on_each_backend;

use super::*;

on_each_backend!(
    a_jwt_speaks_for_the_client_with_the_scope_and_lifetime_asked,
    an_opaque_token_is_stored_by_digest_with_its_expiry,
);

async fn a_jwt_speaks_for_the_client_with_the_scope_and_lifetime_asked(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let issued = fx
        .grant("machine", "grant_type=client_credentials&scope=basic+admin")
        .await
        .unwrap();
    assert_eq!(issued.scope, scope("basic admin"));
    assert_eq!(issued.expires_in, ACCESS_TTL_SECS);
    assert!(issued.refresh_token.is_none());
    assert!(issued.user.is_none());
    let claims = fx.claims(&issued.access_token);
    assert_eq!(claims.sub, "machine");
    assert_eq!(claims.client_id, "machine");
    assert_eq!(claims.scope, scope("basic admin"));
    assert_eq!(claims.iat, fx.start_secs);
    assert_eq!(claims.exp, fx.start_secs + ACCESS_TTL_SECS);
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        (ISSUER, AUDIENCE)
    );
    assert!(claims.username.is_none() && claims.company.is_none() && claims.roles.is_none());
}

async fn an_opaque_token_is_stored_by_digest_with_its_expiry(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let issued = fx
        .grant("machine-opaque", "grant_type=client_credentials")
        .await
        .unwrap();
    assert!(issued.access_token.starts_with(OPAQUE_PREFIX));
    assert!(!issued.access_token.contains('.'));
    assert_eq!(issued.scope, scope("basic"));
    assert_eq!(issued.expires_in, ACCESS_TTL_SECS);
    let stored = fx
        .store()
        .find_access_token(&secret::digest(&issued.access_token))
        .await
        .unwrap()
        .expect("the opaque token is stored");
    assert_eq!(stored.subject, "machine-opaque");
    assert_eq!(stored.user_id, None);
    assert_eq!(stored.scope, scope("basic"));
    assert_eq!(
        stored.expires_at.timestamp(),
        fx.start_secs + ACCESS_TTL_SECS
    );
    assert!(stored.is_active(fx.clock.now_utc()));
}
