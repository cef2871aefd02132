//! The OpenAPI 3.1 document of the admin API, generated from the handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::problem::{FieldError, Problem};

/// Adds the bearer-token scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rat_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The admin API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Rampart admin API", description = "Consumers, API keys, admin tokens, client bans, the audit trail and read-only views of the running gateway. Authenticate with `Authorization: Bearer <admin token>`; roles: auditor (read), operator (read, consumers and keys), admin (everything)."),
    paths(
        api::list_consumers, api::create_consumer, api::get_consumer, api::update_consumer,
        api::delete_consumer, api::consumer_usage,
        api::list_keys, api::create_key, api::get_key, api::revoke_key, api::rotate_key,
        api::list_tokens, api::create_token, api::revoke_token, api::list_bans, api::lift_ban,
        api::audit_events, crate::audit_api::checkpoint, crate::audit_api::publish_checkpoint,
        crate::audit_api::key, crate::audit_api::entries, crate::audit_api::inclusion_proof,
        crate::audit_api::consistency_proof, api::config_routes, api::upstreams,
        crate::healthz, crate::assertion_jwks, crate::readyz, crate::metrics, crate::openapi_json,
    ),
    components(schemas(Problem, FieldError, crate::ReadinessView)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
