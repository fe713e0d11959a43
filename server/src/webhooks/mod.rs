//! Delivering webhooks. Events are queued in the database's outbox in
//! their own transaction (so a webhook is never lost, nor sent for a write
//! that did not commit); this dispatcher sends them.
//!
//! One node at a time delivers an endpoint: the one holding its lease in
//! the database, renewed while it works and given back when it is done.
//! The others see the endpoint leased and leave it; a node that died lets
//! go when its lease runs out. An endpoint's events go out oldest first;
//! of each room at most one at a time, so a room's events arrive in seq
//! order, and a failed one holds back only the rest of its room. Failures
//! are retried with exponential backoff; an endpoint whose oldest waiting
//! event kept failing for `--webhook-retry-secs` is paused until the site
//! resumes it. Each attempt is logged. Nothing here holds up chat traffic:
//! the writer only inserts rows.
//!
//! Delivery is at least once: a node killed between an endpoint's answer
//! and its record sends the event again after the lease runs out, with
//! the same `webhook-id`, which receivers use to skip repeats.

pub mod sign;

use crate::config::WebhooksConfig;
use crate::store::{Outcome, Queued, Store, StoreError, Target, now_ms};
use futures_util::StreamExt;
use natter_shared::webhooks::{WebhookData, WebhookPayload, WebhookType};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many of an endpoint's rooms are sent to at once.
const PARALLEL: usize = 8;

/// Most events one round of an endpoint takes.
const ROUND: u32 = 64;

/// Why the dispatcher could not start.
#[derive(Debug, thiserror::Error)]
#[error("could not set up the webhook client: {0}")]
pub struct WebhookError(#[from] reqwest::Error);

/// Wakes the dispatcher when this node committed events; cheap to clone.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Something may have been queued.
    pub fn wake(&self) {
        self.0.notify_waiters();
    }
}

struct Dispatcher {
    store: Store,
    http: reqwest::Client,
    config: WebhooksConfig,
    /// This node's name in leases.
    owner: String,
    wake: Wake,
    stop: CancellationToken,
    /// Endpoints this node is delivering.
    running: Mutex<HashSet<String>>,
}

/// Starts delivering; the task ends once `stop` fired and the rounds in
/// flight are recorded.
pub fn spawn(
    store: Store,
    config: WebhooksConfig,
    stop: CancellationToken,
) -> Result<(Wake, JoinHandle<()>), WebhookError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.webhook_timeout_secs))
        .connect_timeout(Duration::from_secs(config.webhook_timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("natter-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let wake = Wake::default();
    let dispatcher = Arc::new(Dispatcher {
        store,
        http,
        config,
        owner: format!("n_{}", uuid::Uuid::new_v4().simple()),
        wake: wake.clone(),
        stop,
        running: Mutex::new(HashSet::new()),
    });
    Ok((wake, tokio::spawn(dispatcher.run())))
}

impl Dispatcher {
    /// Looks for endpoints with work whenever this node commits and every
    /// `--webhook-poll-ms`, and starts a delivery for each it can lease.
    async fn run(self: Arc<Self>) {
        let tracker = TaskTracker::new();
        let poll = Duration::from_millis(self.config.webhook_poll_ms);
        loop {
            match self.store.webhooks_with_work(&self.owner).await {
                Ok(ids) => {
                    for id in ids {
                        let new = self
                            .running
                            .lock()
                            .map(|mut running| running.insert(id.clone()))
                            .unwrap_or(false);
                        if new {
                            tracker.spawn(self.clone().deliver(id));
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not look for webhooks to send"),
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = self.wake.0.notified() => {
                    // Let a burst of commits queue up before looking.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ = tokio::time::sleep(poll) => {}
            }
        }
        tracker.close();
        tracker.wait().await;
        tracing::debug!("webhook dispatcher stopped");
    }

    /// Delivers one endpoint's events while it holds the lease and
    /// something is due or soon due.
    async fn deliver(self: Arc<Self>, id: String) {
        let lease = Duration::from_secs(self.config.webhook_lease_secs);
        let mut paused = false;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            match self.round(&id, lease).await {
                Ok(Round::Sent) => {}
                Ok(Round::Paused) => {
                    paused = true;
                    break;
                }
                Ok(Round::Done) => break,
                Ok(Round::WaitUntil(due)) => {
                    // Sleep until the next retry, but renew the lease in time.
                    let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                    let wait = Duration::from_millis(wait).min(lease / 2);
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = self.wake.0.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(webhook = %id, error = %err, "webhook delivery stopped");
                    break;
                }
            }
        }
        if !paused && let Err(err) = self.store.release_webhook(&id, &self.owner).await {
            tracing::warn!(webhook = %id, error = %err, "could not give a webhook lease back");
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
    }

    /// Takes or renews the endpoint's lease for `lease` from now.
    async fn renew(&self, id: &str, lease: Duration) -> Result<bool, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.store
            .lease_webhook(id, &self.owner, now_ms().saturating_add(lease_ms))
            .await
    }

    /// One round: renews the lease, sends what is due (one per room, some
    /// rooms at once), records the outcomes. The lease is renewed every
    /// third of its length while the round's requests are out, so a round
    /// of slow endpoints never outlives it and lets another node send the
    /// same events meanwhile.
    async fn round(&self, id: &str, lease: Duration) -> Result<Round, StoreError> {
        if !self.renew(id, lease).await? {
            return Ok(Round::Done);
        }
        let Some(target) = self.store.webhook_target(id).await? else {
            return Ok(Round::Done);
        };
        if target.paused {
            return Ok(Round::Done);
        }
        let heads = self.store.webhook_heads(id, ROUND).await?;
        if heads.is_empty() {
            return Ok(match self.store.webhook_next_due(id).await? {
                Some(due) => Round::WaitUntil(due),
                None => Round::Done,
            });
        }
        let sends = futures_util::stream::iter(heads)
            .map(|queued| self.send(id, &target, queued))
            .buffer_unordered(PARALLEL)
            .collect::<Vec<_>>();
        tokio::pin!(sends);
        let every = (lease / 3).max(Duration::from_millis(100));
        let mut renewal = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let sent = loop {
            tokio::select! {
                sent = &mut sends => break sent,
                _ = renewal.tick() => {
                    if !self.renew(id, lease).await? {
                        tracing::warn!(webhook = %id, "the webhook lease was lost mid-round");
                    }
                }
            }
        };
        let outcomes: Vec<Outcome> = sent.into_iter().collect::<Result<_, _>>()?;
        let now = now_ms();
        self.store.settle_webhook(id, &outcomes, now).await?;
        let retry_ms =
            i64::try_from(self.config.webhook_retry_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let gave_up = outcomes.iter().any(|o| {
            o.retry_at.is_some() && now - o.queued.first_failed_at.unwrap_or(now) >= retry_ms
        });
        if gave_up {
            tracing::warn!(webhook = %id, url = %target.url, "webhook endpoint kept failing: paused");
            self.store.pause_webhook(id).await?;
            return Ok(Round::Paused);
        }
        Ok(Round::Sent)
    }

    /// Sends one event and says what became of it.
    async fn send(&self, id: &str, target: &Target, queued: Queued) -> Result<Outcome, StoreError> {
        let message_id = format!("msg_{id}_{}", queued.id);
        let Some(payload) = self.payload(target, &queued).await? else {
            // Its room or event is gone (the site deleted it): nothing to say.
            return Ok(Outcome {
                queued,
                message_id,
                status: None,
                error: Some("the event no longer exists".into()),
                duration_ms: 0,
                retry_at: None,
            });
        };
        let body = serde_json::to_vec(&payload)
            .map_err(|e| StoreError::Corrupt(format!("webhook payload: {e}")))?;
        let timestamp = now_ms() / 1000;
        let started = Instant::now();
        let answer = match sign::sign(&target.secret, &message_id, timestamp, &body) {
            Ok(signature) => self
                .http
                .post(&target.url)
                .header("content-type", "application/json")
                .header("webhook-id", &message_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map(|response| response.status())
                .map_err(|e| describe(&e)),
            Err(err) => Err(err.to_string()),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error) = match answer {
            Ok(status) => (Some(status.as_u16()), None),
            Err(error) => (None, Some(error)),
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let retry_at = (!ok).then(|| now_ms().saturating_add(self.backoff_ms(queued.attempts)));
        Ok(Outcome {
            queued,
            message_id,
            status,
            error,
            duration_ms,
            retry_at,
        })
    }

    /// The wait before retry number `attempts + 1`.
    fn backoff_ms(&self, attempts: i64) -> i64 {
        let base = i64::try_from(self.config.webhook_backoff_ms).unwrap_or(i64::MAX);
        let max = i64::try_from(self.config.webhook_backoff_max_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let doubled = attempts.clamp(0, 40);
        base.saturating_mul(1i64 << doubled).min(max)
    }

    /// The body of a queued event's webhook, read now; `None` when what it
    /// is about no longer exists.
    async fn payload(
        &self,
        target: &Target,
        queued: &Queued,
    ) -> Result<Option<WebhookPayload>, StoreError> {
        let site = target.site.clone();
        let (data, ts) = match queued.kind {
            WebhookType::RoomCreated => {
                let Some(room) = self.store.room(&site, &queued.room).await? else {
                    return Ok(None);
                };
                let ts = room.created_at;
                (WebhookData::Room { site, room }, ts)
            }
            kind => {
                let after = queued.seq.saturating_sub(1);
                let event = self
                    .store
                    .events_after(&queued.room, after, 1)
                    .await?
                    .into_iter()
                    .find(|e| e.seq == queued.seq);
                let Some(event) = event else { return Ok(None) };
                let room = queued.room.clone();
                if kind != WebhookType::MessageReported {
                    let ts = event.ts;
                    (WebhookData::Event { site, room, event }, ts)
                } else {
                    let id = queued.report.as_deref().unwrap_or_default();
                    let Some(report) = self.store.report_by_id(&site, id).await? else {
                        return Ok(None);
                    };
                    let ts = report.created_at;
                    let data = WebhookData::Report {
                        site,
                        room,
                        report,
                        event,
                    };
                    (data, ts)
                }
            }
        };
        Ok(Some(WebhookPayload {
            kind: queued.kind,
            timestamp: rfc3339(ts),
            data,
        }))
    }
}

/// What a round ended with.
enum Round {
    /// It sent something: go on.
    Sent,
    /// Nothing is due before this time (ms).
    WaitUntil(i64),
    /// Nothing waits, or the lease is another node's.
    Done,
    /// The endpoint kept failing and is paused.
    Paused,
}

/// A failed request, in a few words for the log.
fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{what}: {err}");
    if let Some(cut) = (0..=400.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
    {
        text.truncate(cut);
    }
    text
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
    }
}
