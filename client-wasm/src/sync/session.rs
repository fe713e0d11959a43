//! The engine and the server's word on the user: a renewed token, the
//! check of a token the store has not seen taken (`GET /session`, see
//! [`crate::trust`]), a ban, and requests made as the user over HTTP.

use super::{Engine, Work, sign_out, uploads};
use crate::error::ClientError;
use leptos::prelude::*;
use natter_shared::{ErrorCode, RoomId, Seq};

impl Engine {
    /// A fresh token for the same user.
    pub fn set_token(&self, token: String) {
        *self.0.token.borrow_mut() = token.clone();
        if let Some(link) = self.0.link.borrow().clone() {
            link.set_token(token);
        }
        self.ask();
    }

    /// Until the server took a token of this user, asks it about the
    /// latest one, again and again while it cannot be reached.
    pub(super) fn ask(&self) {
        if self.0.trusted.get() || self.0.asking.replace(true) {
            return;
        }
        let engine = self.clone();
        leptos::task::spawn_local(async move {
            let mut attempt = 0;
            while !engine.0.closed.get() && !engine.0.trusted.get() {
                let token = engine.0.token.borrow().clone();
                match crate::trust::ask(&engine.0.site, &token).await {
                    crate::trust::Verdict::Taken => {
                        engine.push(Work::Confirmed(token));
                        break;
                    }
                    crate::trust::Verdict::Refused { code, reason } => {
                        if code == ErrorCode::TokenExpired {
                            crate::embed::post_token_expired();
                        }
                        let reason = format!("The chat server refused the sign-in: {reason}");
                        engine.0.view.error.set(Some(reason));
                        break;
                    }
                    crate::trust::Verdict::Banned(reason) => {
                        engine.banned(reason);
                        break;
                    }
                    crate::trust::Verdict::Unreachable => {
                        let random = js_sys::Math::random();
                        uploads::sleep(crate::link::backoff_ms(attempt, random)).await;
                        attempt = attempt.saturating_add(1);
                    }
                }
            }
            engine.0.asking.set(false);
        });
    }

    /// The site banned the user: every tab of theirs signs out (this one
    /// too) and what this browser kept of them is deleted.
    pub(super) fn banned(&self, reason: String) {
        self.0.view.error.set(Some(format!(
            "The chat is closed to you ({reason}); what this browser kept of it is deleted."
        )));
        self.0.view.signed_out.update(|n| *n += 1);
        let (site, user, error) = (self.0.site.clone(), self.0.user.clone(), self.0.view.error);
        leptos::task::spawn_local(async move {
            if let Err(err) = sign_out(&site, Some(&user)).await {
                error.set(Some(err.to_string()));
            }
        });
    }

    /// The server took `token`: the database remembers its digest, and
    /// shows what it holds if it did not yet.
    pub(super) async fn confirmed(&self, token: &str) -> Result<(), ClientError> {
        if let Some(digest) = crate::trust::digest(token).await
            && self.0.db.verified().await?.as_deref() != Some(digest.as_str())
        {
            self.0.db.set_verified(&digest).await?;
        }
        if !self.0.trusted.replace(true) {
            self.show_store().await?;
        }
        Ok(())
    }

    /// Reports someone else's message to the site's moderators (`POST
    /// /reports`, from any tab); the error says why it did not go.
    pub async fn report(&self, room: RoomId, seq: Seq, note: Option<String>) -> Result<(), String> {
        let body = crate::json::stringify(&natter_shared::api::NewReport { room, seq, note })
            .ok_or("the report could not be written")?;
        let token = self.0.token.borrow().clone();
        let answer =
            crate::files::fetch_as_user("POST", "/reports", &self.0.site, &token, Some(&body))
                .await;
        match answer {
            Some(response) if response.ok() => Ok(()),
            Some(response) => Err(format!("the server refused it ({})", response.status())),
            None => Err("no connection: try again later".into()),
        }
    }
}
