//! The link to a NATS server (core NATS, no JetStream): one connection
//! per node, one subscription to `PREFIX.*`, and four tasks.
//!
//! - The publisher hands queued messages to the NATS client. The writer's
//!   publish callback never waits for it: a full queue drops the message
//!   and marks publications as possibly lost.
//! - The receiver puts other nodes' messages into the local hub.
//! - The watcher reacts to the client's events: after a (re)connection it
//!   waits until the broker has our subscription, then has every local
//!   connection resync, and, if this node may have lost publications,
//!   asks every other node to do the same.
//! - The resyncer serves those requests, several at once when they come
//!   together (every node reconnecting after a broker restart).
//! - The sweeper (`sweep.rs`) catches what got lost unnoticed.

use super::wire::{Envelope, Msg, Outgoing, valid_prefix};
use crate::hub::{Hub, Moved};
use crate::metrics::{self, Metrics};
use crate::presence::Presence;
use crate::store::{Store, now_ms, redact_url};
use async_nats::{Client, Event, Subscriber};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Messages waiting for the NATS client. When the broker is down the
/// client stops taking them and this fills; past it, messages are dropped
/// and, once the link is back, every node is asked to resync. With the
/// client's own buffer, at most some 5,000 events (bodies of at most
/// `--max-body-bytes`) wait for a broker that is down.
const OUT_QUEUE: usize = 4096;
/// How often a node says which users it holds (presence).
const HOLD_EVERY: Duration = Duration::from_secs(30);
/// Messages the NATS client itself buffers before `publish` waits.
const CLIENT_CAPACITY: usize = 1024;
/// Messages the NATS client holds for our subscription; past it the
/// client drops them and reports a slow consumer, and this node resyncs.
const SUBSCRIPTION_CAPACITY: usize = 65_536;
/// Longest wait between two attempts to reach the broker.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Time one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Ping interval: a broker that stopped answering is noticed within two.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Time for the broker to confirm our subscription after a (re)connect,
/// and for the last messages to leave at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Resync requests within this window are served by one resync.
const RESYNC_COALESCE: Duration = Duration::from_millis(250);
/// Connections told to resync at once, and the pause between batches:
/// some 10,000 connections a second.
const RESYNC_BATCH: usize = 500;
const RESYNC_PACE: Duration = Duration::from_millis(50);
/// A link that drops within this time of a publication may have lost it
/// in flight (a silent broker is noticed within two pings).
const IN_FLIGHT_WINDOW_MS: i64 = 3 * PING_INTERVAL.as_millis() as i64;

/// Why the broker link could not be set up. Once set up, the link never
/// fails: it reconnects, and the node works alone meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "invalid broker subject prefix {0:?}: use dot-separated tokens of letters, digits, '-' and '_'"
    )]
    Prefix(String),
    #[error("could not set up the broker link: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("could not subscribe on the broker: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}

/// What the tasks share with the NATS client's event callback.
#[derive(Default)]
struct Shared {
    connected: AtomicBool,
    /// A (re)connection the watcher has not handled yet.
    reconnected: AtomicBool,
    /// The first connection was made, subscription included, before the
    /// node served anyone: nobody can have missed anything through it.
    first_confirmed: AtomicBool,
    /// The subscription dropped messages since the watcher last looked.
    overrun: AtomicBool,
    /// Some publication may not have reached the broker since the last
    /// `Resync` this node sent.
    lost: AtomicBool,
    /// When this node last handed a message to the client (ms).
    last_publish_ms: AtomicI64,
    /// Wakes the watcher.
    wake: Notify,
}

impl Shared {
    /// The NATS client's event callback: only flags, so it never blocks
    /// the client; the watcher does the work.
    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                self.connected.store(true, Ordering::Release);
                self.reconnected.store(true, Ordering::Release);
                self.wake.notify_one();
            }
            Event::Disconnected => {
                self.connected.store(false, Ordering::Release);
                self.first_confirmed.store(false, Ordering::Release);
                let since = now_ms() - self.last_publish_ms.load(Ordering::Acquire);
                if since < IN_FLIGHT_WINDOW_MS {
                    self.lost.store(true, Ordering::Release);
                }
                tracing::warn!(
                    "lost the broker: events reach other nodes' connections once it is back"
                );
            }
            Event::SlowConsumer(_) => {
                self.overrun.store(true, Ordering::Release);
                self.wake.notify_one();
            }
            Event::Closed => self.connected.store(false, Ordering::Release),
            other => tracing::info!(event = %other, "broker"),
        }
    }
}

/// Requests that every local connection resync, served together.
#[derive(Default)]
struct Resyncs {
    pending: AtomicBool,
    wake: Notify,
}

impl Resyncs {
    fn request(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }
}

/// The publishing end of the link; cheap to clone.
#[derive(Clone)]
pub(super) struct Link {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Link {
    /// Queues a message for the other nodes without waiting.
    pub fn offer(&self, msg: Msg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            // Typing is best effort.
            Err(mpsc::error::TrySendError::Full(Msg::Typing { .. })) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::inc(&self.metrics.broker_dropped);
                if !self.shared.lost.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        "the queue to the broker is full; other nodes will be asked to resync"
                    );
                }
            }
            // Stopping: the writer has stopped too, nothing new is committed.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether the link to the broker is up.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }
}

/// The link's tasks; [`BrokerTask::shutdown`] ends them.
pub struct BrokerTask {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl BrokerTask {
    /// Hands what is still queued to the broker (within a bound), then
    /// ends the tasks. Call it after the writer has stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a broker task failed");
            }
        }
    }
}

/// Sets up the link; the connection itself is made in the background, so
/// an unreachable broker does not keep the node from serving.
pub(super) async fn connect(
    url: &str,
    prefix: &str,
    hub: Hub,
    presence: Presence,
    store: Store,
    sweep_every: Duration,
    metrics: Arc<Metrics>,
) -> Result<(Link, BrokerTask), BrokerError> {
    if !valid_prefix(prefix) {
        return Err(BrokerError::Prefix(prefix.to_string()));
    }
    let node = format!("n_{}", uuid::Uuid::new_v4().simple());
    let shared = Arc::new(Shared::default());
    let client = async_nats::ConnectOptions::new()
        .name(format!("natter {node}"))
        // Our own messages are not sent back to us (and ignored if they are).
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(CONNECT_TIMEOUT)
        .ping_interval(PING_INTERVAL)
        .reconnect_delay_callback(|attempts| {
            let step = Duration::from_millis(100);
            step.saturating_mul(u32::try_from(attempts).unwrap_or(u32::MAX))
                .min(MAX_RECONNECT_DELAY)
        })
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .client_capacity(CLIENT_CAPACITY)
        .event_callback({
            let shared = shared.clone();
            move |event| {
                shared.on_event(event);
                std::future::ready(())
            }
        })
        // Several servers (of one NATS cluster) may be given, comma-separated.
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
        .await?;
    let subscriber = client.subscribe(format!("{prefix}.*")).await?;
    // Give the broker a moment before serving: once it has our
    // subscription, the connections about to come miss nothing.
    match tokio::time::timeout(CONNECT_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => shared.first_confirmed.store(true, Ordering::Release),
        Ok(Err(_)) | Err(_) => tracing::warn!(
            broker = %redact_url(url),
            "the broker does not answer; serving without it until it does"
        ),
    }
    tracing::info!(%node, broker = %redact_url(url), %prefix, "fan-out across nodes through the broker");

    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let link = Link {
        tx,
        shared,
        metrics: metrics.clone(),
    };
    let resyncs = Arc::new(Resyncs::default());
    let stop = CancellationToken::new();
    let node: Arc<str> = node.into();
    let prefix: Arc<str> = prefix.into();
    let tasks = vec![
        tokio::spawn(publish(
            client.clone(),
            rx,
            Sender {
                node: node.clone(),
                prefix,
                shared: link.shared.clone(),
            },
            stop.clone(),
        )),
        tokio::spawn(receive(
            subscriber,
            node,
            hub.clone(),
            presence.clone(),
            resyncs.clone(),
            stop.clone(),
        )),
        tokio::spawn(hold(link.clone(), presence, stop.clone())),
        tokio::spawn(watch(client, link.clone(), resyncs.clone(), stop.clone())),
        tokio::spawn(resync(hub.clone(), resyncs, metrics.clone(), stop.clone())),
        tokio::spawn(super::sweep::run(
            store,
            hub,
            sweep_every,
            metrics,
            stop.clone(),
        )),
    ];
    Ok((link, BrokerTask { stop, tasks }))
}

/// Who publishes, and where.
struct Sender {
    node: Arc<str>,
    prefix: Arc<str>,
    shared: Arc<Shared>,
}

impl Sender {
    async fn send(&self, client: &Client, msg: &Msg) {
        let payload = match serde_json::to_vec(&Outgoing {
            node: &self.node,
            msg,
        }) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "could not serialise a broker message");
                return;
            }
        };
        // While the link is down the client keeps what it is given for
        // the next connection; what it wrote just before the link dropped
        // may be lost (see `Shared::on_event`).
        self.shared
            .last_publish_ms
            .store(now_ms(), Ordering::Release);
        let subject = format!("{}.{}", self.prefix, msg.kind());
        if let Err(err) = client.publish(subject, payload.into()).await {
            self.shared.lost.store(true, Ordering::Release);
            tracing::warn!(error = %err, "could not publish to the broker");
        }
    }
}

/// Says which users this node holds every [`HOLD_EVERY`], and forgets
/// the users of nodes silent for three times as long.
async fn hold(link: Link, presence: Presence, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HOLD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        presence.forget_stale(HOLD_EVERY * 3, now_ms());
        let users = presence.held();
        if !users.is_empty() {
            link.offer(Msg::Holding { users });
        }
    }
}

/// The publisher task.
async fn publish(
    client: Client,
    mut rx: mpsc::Receiver<Msg>,
    sender: Sender,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = stop.cancelled() => break,
        };
        let Some(msg) = msg else { break };
        tokio::select! {
            () = sender.send(&client, &msg) => {}
            () = stop.cancelled() => break,
        }
        // Caught up: if something was dropped while the link was up, the
        // other nodes resync now rather than wait for a reconnection.
        if rx.is_empty()
            && sender.shared.connected.load(Ordering::Acquire)
            && sender.shared.lost.swap(false, Ordering::AcqRel)
        {
            sender.send(&client, &Msg::Resync).await;
        }
    }
    // Stopping, after the writer: hand over what is queued, within a bound
    // (none when the broker is down: the other nodes' sweeps find it).
    rx.close();
    if !sender.shared.connected.load(Ordering::Acquire) {
        tracing::warn!(
            queued = rx.len(),
            "stopping while the broker is down; other nodes get the last events from the store"
        );
        return;
    }
    let drain = async {
        while let Some(msg) = rx.recv().await {
            sender.send(&client, &msg).await;
        }
        client.flush().await
    };
    match tokio::time::timeout(FLUSH_TIMEOUT, drain).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "could not flush the broker link"),
        Err(_) => tracing::warn!(
            "the broker did not take the last events in time; other nodes' connections get them from the store"
        ),
    }
}

/// The receiver task.
async fn receive(
    mut subscriber: Subscriber,
    node: Arc<str>,
    hub: Hub,
    presence: Presence,
    resyncs: Arc<Resyncs>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = subscriber.next() => message,
            () = stop.cancelled() => return,
        };
        let Some(message) = message else {
            tracing::warn!("the broker subscription ended");
            return;
        };
        let envelope: Envelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(subject = %message.subject, error = %err, "ignored a broker message that is not a node's");
                continue;
            }
        };
        if *envelope.node == *node {
            continue;
        }
        let envelope_node: Arc<str> = envelope.node.as_str().into();
        match envelope.msg {
            Msg::Event { site, event } => {
                hub.publish_event(&site, &event);
                super::note_membership(&presence, &site, &event);
            }
            Msg::Room {
                site,
                room,
                members,
            } => {
                hub.announce_room(&site, &room, &members);
                super::note_members(&presence, &site, &room, &members);
            }
            Msg::Typing { room, user } => {
                hub.typing(&room, &user);
            }
            Msg::Read {
                room,
                user,
                after,
                seq,
                public,
            } => hub.read(&room, &user, Moved { after, seq }, public, None),
            Msg::Arrive { site, user, rooms } => {
                presence.remote_arrive(&envelope_node, &(site, user), rooms);
            }
            Msg::Depart {
                site,
                user,
                last_seen,
            } => presence.remote_depart(&envelope_node, &(site, user), last_seen),
            Msg::Holding { users } => presence.remote_still(&envelope_node, &users),
            Msg::Resync => {
                tracing::info!(from = %envelope.node, "another node may have missed publishing; resyncing");
                resyncs.request();
            }
            Msg::Ban { site, user } => hub.ban(&site, &user),
        }
    }
}

/// The watcher task.
async fn watch(client: Client, link: Link, resyncs: Arc<Resyncs>, stop: CancellationToken) {
    let shared = link.shared.clone();
    loop {
        tokio::select! {
            () = shared.wake.notified() => {}
            () = stop.cancelled() => return,
        }
        if shared.reconnected.swap(false, Ordering::AcqRel) {
            // The client re-subscribes on reconnecting; a flush (PING,
            // PONG) returns once the broker has taken the subscription, so
            // nothing published after the resync's reads is missed.
            match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "broker flush failed"),
                Err(_) => tracing::warn!("the broker did not confirm our subscription in time"),
            }
            tracing::info!("broker link up");
            if !shared.first_confirmed.swap(false, Ordering::AcqRel) {
                resyncs.request();
            }
            if shared.lost.swap(false, Ordering::AcqRel) {
                link.offer(Msg::Resync);
            }
        }
        if shared.overrun.swap(false, Ordering::AcqRel) {
            tracing::warn!("this node fell behind the broker; its connections resync");
            resyncs.request();
        }
    }
}

/// The resyncer task.
async fn resync(hub: Hub, resyncs: Arc<Resyncs>, metrics: Arc<Metrics>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = resyncs.wake.notified() => {}
            () = stop.cancelled() => return,
        }
        // Requests that come meanwhile are served by this resync, which
        // starts after all of them.
        tokio::select! {
            () = tokio::time::sleep(RESYNC_COALESCE) => {}
            () = stop.cancelled() => return,
        }
        resyncs.pending.store(false, Ordering::Release);
        metrics::inc(&metrics.broker_resyncs);
        // In batches, so that the syncs that follow do not all reach the
        // database at once. Those not told yet still fill every gap a live
        // event reveals.
        let mut told = 0;
        let live = hub.live_connections();
        for (n, batch) in live.chunks(RESYNC_BATCH).enumerate() {
            if n > 0 {
                tokio::select! {
                    () = tokio::time::sleep(RESYNC_PACE) => {}
                    () = stop.cancelled() => return,
                }
            }
            told += hub.resync(batch);
        }
        if told > 0 {
            tracing::info!(
                connections = told,
                "told connections to resync after a broker interruption"
            );
        }
    }
}
