//! The OpenAPI 3.1 description of `/api/v1`: the handlers carry their own
//! `#[utoipa::path]` and register through [`super::routes`]; this adds
//! what every operation shares (the API key, the answers any of them may
//! give) and is served at `/api/v1/openapi.json`.

use natter_shared::api::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    ResponseBuilder, SecurityRequirement, ServerBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// The document before the routes are added.
pub(super) fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Natter HTTP API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "What a site's backend calls, with the site's API key as \
                     `Authorization: Bearer KEY`. Every error is a JSON `ErrorBody` \
                     with a stable code. docs/protocol.md says more.",
                ))
                .build(),
        )
        .servers(Some(vec![ServerBuilder::new().url("/api/v1").build()]))
        .build()
}

/// Answers any operation may give, besides its own.
const SHARED: [(&str, &str); 4] = [
    ("401", "No API key, or an unknown one"),
    ("413", "A body over --max-request-bytes"),
    (
        "429",
        "Over the site's API rate (Retry-After says when to try again)",
    ),
    ("500", "A server failure"),
];

/// Adds the API key and the shared answers to every operation.
pub(super) fn finish(mut api: OpenApi) -> OpenApi {
    let components = api.components.take().unwrap_or_default();
    let mut components = ComponentsBuilder::from(components)
        .security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .schema(ErrorBody::name(), ErrorBody::schema())
        .build();
    let mut schemas = Vec::new();
    ErrorBody::schemas(&mut schemas);
    components.schemas.extend(schemas);
    api.components = Some(components);
    api.security = Some(vec![SecurityRequirement::new(
        "api_key",
        Vec::<String>::new(),
    )]);
    let error = || {
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
            .build()
    };
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in SHARED {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/json", error())
                                .build(),
                        )
                    });
            }
        }
    }
    api
}
