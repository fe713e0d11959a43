//! Demo mode (`natter --demo`): a demo site with four users, a dialog and
//! a group room, a page to pick who you are, and a route that mints tokens
//! for the demo users, and a first conversation in the Lobby with a
//! photo and a document. None of it exists without `--demo`.

use crate::auth::{self, Claims};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::writer::WriteOp;
use crate::store::{Store, StoreError, now_ms};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use natter_shared::text::Body;
use natter_shared::{ErrorCode, Member, RoomId, SiteId, UserId};
use serde::{Deserialize, Serialize};

/// The demo site's id.
pub const SITE: &str = "demo";

/// The demo users: id and display name.
pub const USERS: [(&str, &str); 4] = [
    ("alice", "Alice"),
    ("bob", "Bob"),
    ("carol", "Carol"),
    ("dave", "Dave"),
];

fn member(id: &str, name: &str) -> Result<Member, StoreError> {
    let id = UserId::parse(id).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(Member::new(id, Some(name.to_string())))
}

/// Creates the demo site, users and rooms when missing, and makes the
/// server's own address an allowed origin. Logs a fresh API key so the
/// HTTP API can be tried. Returns the Lobby's id when it was just made
/// (for [`seed`]).
pub async fn setup(
    store: &Store,
    bind: std::net::SocketAddr,
) -> Result<Option<RoomId>, StoreError> {
    let site = SiteId::parse(SITE).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let origins = vec![
        format!("http://{bind}"),
        format!("http://localhost:{}", bind.port()),
        format!("http://127.0.0.1:{}", bind.port()),
    ];
    let mut created = None;
    if store.site(&site).await?.is_none() {
        store
            .create_site(Some(site.clone()), "Natter demo", &[])
            .await?;
        let members = USERS
            .iter()
            .map(|(id, name)| member(id, name))
            .collect::<Result<Vec<_>, _>>()?;
        let lobby = store.create_group(&site, "Lobby", &members).await?;
        store.open_dialog(&site, &members[0], &members[1]).await?;
        created = Some(lobby.id);
    }
    for origin in &origins {
        store.add_origin(&site, origin).await?;
    }
    let key = store.rotate_api_key(&site).await?;
    tracing::info!(
        site = SITE,
        api_key = key.expose(),
        "demo site ready (API key for trying the HTTP API)"
    );
    Ok(created)
}

/// A short conversation in a new demo Lobby, so that the demo opens on
/// what Natter does: a welcome, and a message with a photo and a document.
pub async fn seed(state: &AppState, lobby: RoomId) -> Result<(), ApiError> {
    let site = SiteId::parse(SITE).map_err(|e| ApiError::invalid(e.to_string()))?;
    let carol = UserId::parse("carol").map_err(|e| ApiError::invalid(e.to_string()))?;
    let photo =
        crate::files::store_whole(state, &site, &carol, "whiteboard.png", whiteboard()?).await?;
    let slides =
        crate::files::store_whole(state, &site, &carol, "week-1.pdf", slides().into()).await?;
    let files = state
        .store
        .attach_files(&site, &carol, &lobby, None, &[photo, slides], 2)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let say = |body: &str, files: Vec<natter_shared::Attachment>| {
        let body = Body::caption(body.to_string(), usize::MAX)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok::<_, ApiError>(WriteOp::Message {
            site: site.clone(),
            room: lobby.clone(),
            sender: Some(carol.clone()),
            client_id: Some(natter_shared::ClientId::from_uuid(uuid::Uuid::now_v7())),
            body,
            files,
        })
    };
    let welcome =
        "Welcome to the Lobby! Messages written here reach everyone, even those offline now.";
    state.writer.write(say(welcome, Vec::new())?).await?;
    let shared = "The whiteboard from today, and the slides for Monday.";
    state.writer.write(say(shared, files)?).await?;
    Ok(())
}

/// A whiteboard-like picture: a pale board with coloured strokes.
fn whiteboard() -> Result<bytes::Bytes, ApiError> {
    let (w, h) = (960u32, 540u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let stroke = |cy: u32, amp: f64, colour: [u8; 3]| {
            let fy = f64::from(cy) + amp * (f64::from(x) / 60.0).sin();
            ((f64::from(y) - fy).abs() < 4.0 && x > 80 && x < 880).then_some(colour)
        };
        stroke(150, 30.0, [37, 99, 235])
            .or_else(|| stroke(270, 45.0, [220, 38, 38]))
            .or_else(|| stroke(390, 20.0, [22, 163, 74]))
            .map_or(image::Rgb([248, 250, 252]), image::Rgb)
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(out.into_inner().into())
}

/// A one-page PDF with a title, written by hand (offsets included).
fn slides() -> Vec<u8> {
    let content = "BT /F1 28 Tf 72 760 Td (Physics 101: week 1) Tj ET \
                   BT /F1 14 Tf 72 720 Td (Motion, forces, and the first lab.) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        out.push_str(&format!("{offset:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

/// `GET /demo`: the page.
pub async fn page() -> impl IntoResponse {
    (
        [(header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        Html(include_str!("demo.html")),
    )
}

/// `?user=` of `/demo/token`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    user: String,
}

/// A minted demo token.
#[derive(Debug, Serialize)]
pub struct DemoToken {
    site: &'static str,
    user: String,
    token: String,
}

/// `GET /demo/token?user=alice`: a 12-hour token for a demo user.
pub async fn token(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<DemoToken>, ApiError> {
    let Some((id, name)) = USERS.iter().find(|(id, _)| *id == q.user) else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "demo tokens exist only for alice, bob, carol and dave",
        ));
    };
    let site_id = SiteId::parse(SITE).map_err(|e| ApiError::invalid(e.to_string()))?;
    let site = state
        .store
        .site(&site_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let now = now_ms() / 1000;
    let claims = Claims {
        sub: (*id).to_string(),
        site: SITE.to_string(),
        exp: now + 12 * 3600,
        nbf: None,
        iat: Some(now),
        name: Some((*name).to_string()),
    };
    Ok(Json(DemoToken {
        site: SITE,
        user: (*id).to_string(),
        token: auth::sign(&claims, &site.token_secret),
    }))
}
