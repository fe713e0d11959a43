//! The TCP proxy between one person's browser and the chat server: the
//! test cuts and restores that person's link through it (open WebSockets
//! included, which Chromium's offline emulation leaves open), and it
//! counts the WebSockets open through it and the bytes sent up through
//! it (and can cut the link once so many went up: a cut mid-upload).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Everything.
    Up,
    /// Page loads, but no WebSocket: open ones are cut, new ones refused.
    NoSocket,
    /// Nothing: every connection is cut or refused.
    Down,
    /// Open WebSockets go silent: the server's side is closed, the
    /// browser's stays open and nothing comes through it any more (a
    /// connection lost without a word, as after a laptop's sleep or a
    /// router's restart). New connections pass.
    Silent,
}

impl Link {
    fn allows(self, websocket: bool) -> bool {
        match self {
            Link::Up | Link::Silent => true,
            Link::NoSocket => !websocket,
            Link::Down => false,
        }
    }
}

/// A TCP proxy in front of the chat server, one per person: the person's
/// browser reaches the chat (pages, widget, socket) only through it.
#[derive(Clone)]
pub struct Proxy(Arc<ProxyInner>);

struct ProxyInner {
    addr: SocketAddr,
    upstream: Mutex<SocketAddr>,
    link: watch::Sender<Link>,
    sockets: AtomicUsize,
    /// Bytes the browser sent through, request heads included.
    sent: AtomicU64,
    /// When `sent` passes this, the link goes down.
    cut_at: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a free port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (link, _) = watch::channel(Link::Up);
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<ProxyInner>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let Some(inner) = weak.upgrade() else { return };
                    tokio::spawn(async move { inner.carry(conn).await });
                }
            });
            ProxyInner {
                addr,
                upstream: Mutex::new(upstream),
                link,
                sockets: AtomicUsize::new(0),
                sent: AtomicU64::new(0),
                cut_at: AtomicU64::new(u64::MAX),
                task,
            }
        });
        Proxy(inner)
    }

    /// `http://127.0.0.1:PORT`: the chat's origin as this person sees it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.0.addr)
    }

    /// Sets what gets through; connections it no longer allows are cut.
    pub fn set(&self, link: Link) {
        self.0.link.send_replace(link);
    }

    /// Points the proxy at a (restarted) server.
    pub fn retarget(&self, upstream: SocketAddr) {
        *lock(&self.0.upstream) = upstream;
    }

    /// Bytes the browser has sent through the proxy so far.
    pub fn sent(&self) -> u64 {
        self.0.sent.load(Ordering::SeqCst)
    }

    /// Cuts the link (as [`Link::Down`]) once `bytes` more went up.
    pub fn cut_after(&self, bytes: u64) {
        self.0
            .cut_at
            .store(self.sent().saturating_add(bytes), Ordering::SeqCst);
    }

    /// True once the link is down.
    pub fn is_down(&self) -> bool {
        *self.0.link.borrow() == Link::Down
    }

    /// WebSockets open through the proxy right now.
    pub fn sockets(&self) -> usize {
        self.0.sockets.load(Ordering::SeqCst)
    }
}

impl ProxyInner {
    async fn carry(self: Arc<Self>, mut client: TcpStream) {
        // The request head says whether this is a WebSocket upgrade.
        let mut head = Vec::with_capacity(2048);
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let websocket = String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("upgrade: websocket");
        let mut link = self.link.subscribe();
        if !link.borrow_and_update().allows(websocket) {
            return; // dropped: the browser sees the connection fail
        }
        let upstream = *lock(&self.upstream);
        let Ok(mut server) = TcpStream::connect(upstream).await else {
            return;
        };
        if server.write_all(&head).await.is_err() {
            return;
        }
        self.count_sent(head.len());
        let _count = websocket.then(|| SocketCount::new(&self.sockets));
        let cut = async {
            loop {
                if link.changed().await.is_err() {
                    return false;
                }
                let now = *link.borrow_and_update();
                if !now.allows(websocket) {
                    return false;
                }
                if websocket && now == Link::Silent {
                    return true;
                }
            }
        };
        let (mut from_client, mut to_client) = client.split();
        let (mut from_server, mut to_server) = server.split();
        let up = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        self.count_sent(n);
                    }
                }
            }
        };
        let silent = tokio::select! {
            () = up => false,
            _ = tokio::io::copy(&mut from_server, &mut to_client) => false,
            silent = cut => silent,
        };
        if silent {
            drop(server);
            // Whatever the browser sends is lost, until it gives up on
            // the connection or the link goes down.
            let mut buf = vec![0u8; 64 * 1024];
            let drain = async {
                while let Ok(n) = client.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            };
            let down = async {
                while link.changed().await.is_ok() {
                    if *link.borrow_and_update() == Link::Down {
                        return;
                    }
                }
            };
            tokio::select! {
                () = drain => {}
                () = down => {}
            }
        }
    }

    fn count_sent(&self, n: usize) {
        let total = self.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if total >= self.cut_at.load(Ordering::SeqCst) {
            self.cut_at.store(u64::MAX, Ordering::SeqCst);
            self.link.send_replace(Link::Down);
        }
    }
}

/// Counts an open WebSocket while it lives.
struct SocketCount<'a>(&'a AtomicUsize);

impl<'a> SocketCount<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        SocketCount(count)
    }
}

impl Drop for SocketCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
