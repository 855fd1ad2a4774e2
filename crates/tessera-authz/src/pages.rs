//! HTML pages, rendered with askama from the workspace's `templates/`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use askama::Template;

use crate::error::ErrorChain;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "index.html")]
struct Index<'a> {
    issuer: &'a str,
    audience: &'a str,
}

/// Headers every HTML page carries: no caching, no framing, no sniffing, no referrer, and
/// a content security policy that allows nothing but the page's own inline style and
/// form posts to `form_action` (a CSP source list; `'none'` for pages without a form).
/// HTML pages never send CORS headers.
pub fn html(mut response: HttpResponseBuilder, form_action: &str) -> HttpResponseBuilder {
    response
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action {form_action}"
            ),
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    response
}

/// Renders `page` with `status` and the HTML headers; a template that fails to render is
/// logged and answered with a bare 500 page.
pub fn render(status: StatusCode, page: &impl Template, form_action: &str) -> HttpResponse {
    match page.render() {
        Ok(body) => html(HttpResponse::build(status), form_action).body(body),
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "rendering a page failed");
            html(HttpResponse::InternalServerError(), "'none'")
                .body("<!doctype html><title>Error</title><p>Internal error.</p>")
        }
    }
}

/// `GET /`: what this server is and where its endpoints are.
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    let page = Index {
        issuer: &state.grants.issuer,
        audience: &state.grants.audience,
    };
    render(StatusCode::OK, &page, "'none'")
}
