//! What a person sees: the lines of the open conversation, the
//! connection line, what the widget's page kept of its errors, and what
//! their browser holds (IndexedDB, the shell's caches, the scripts it
//! loaded).

use super::person::Person;
use serde_json::json;

/// One line of the conversation as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Seen {
    pub author: Option<String>,
    pub body: String,
    pub pending: bool,
    pub failed: bool,
    pub mine: bool,
    /// The stored event's seq (none while sending).
    pub seq: Option<u64>,
}

/// Reads the visible lines of the open conversation.
const LINES_JS: &str =
    "return Array.from(document.querySelectorAll('.messages li.msg')).map(li => ({
  author: li.querySelector('.author') ? li.querySelector('.author').textContent : null,
  body: li.querySelector('.body') ? li.querySelector('.body').textContent : '',
  pending: li.classList.contains('pending'),
  failed: li.classList.contains('failed'),
  mine: li.classList.contains('mine'),
  seq: li.dataset.seq === undefined ? null : Number(li.dataset.seq),
}));";

impl Person {
    /// A description of the chat as the person sees it.
    pub async fn screen(&self) -> String {
        let status = self.status().await;
        let lines = self.lines_raw().await.unwrap_or_default();
        let tail: Vec<String> = lines
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|l| {
                let state = if l.pending {
                    " (sending…)"
                } else if l.failed {
                    " (not sent)"
                } else {
                    ""
                };
                format!(
                    "{}: {:?}{state}",
                    l.author.as_deref().unwrap_or("—"),
                    l.body
                )
            })
            .collect();
        let order = if lines.iter().filter_map(|l| l.seq).is_sorted() {
            "in order"
        } else {
            "NOT in order"
        };
        let stopped = self
            .stopped()
            .await
            .map(|why| format!("; the widget stopped: {why}"))
            .unwrap_or_default();
        let uncaught = self
            .page_error()
            .await
            .map(|what| format!("; an uncaught error in the widget's page: {what}"))
            .unwrap_or_default();
        format!(
            "in {:?}: status {status:?}, {} lines ({order}), the last: [{}]{stopped}{uncaught}",
            self.engine,
            lines.len(),
            tail.join("; ")
        )
    }

    /// Why the widget stopped (its first panic or trap), if it did.
    pub async fn stopped(&self) -> Option<String> {
        self.attribute_of_root("data-natter-stopped").await
    }

    /// The first error the widget's page kept (an uncaught one, or a
    /// defect the widget went on past), if any.
    pub async fn page_error(&self) -> Option<String> {
        self.attribute_of_root("data-natter-error").await
    }

    /// An attribute of the widget page's root element, if it is there.
    async fn attribute_of_root(&self, name: &str) -> Option<String> {
        let value = self
            .browser
            .execute(
                "return document.documentElement.getAttribute(arguments[0]);",
                vec![json!(name)],
            )
            .await
            .ok()?;
        value.as_str().map(str::to_owned)
    }

    /// The connection line.
    pub async fn status(&self) -> String {
        self.browser
            .execute(
                "var s = document.querySelector('.status'); return s ? s.textContent : null;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "(no chat on screen)".into())
    }

    async fn lines_raw(&self) -> Option<Vec<Seen>> {
        let v = self.browser.execute(LINES_JS, vec![]).await.ok()?;
        serde_json::from_value(v).ok()
    }

    /// The lines of the open conversation, oldest first.
    pub async fn lines(&self) -> Vec<Seen> {
        serde_json::from_value(self.js(LINES_JS, vec![]).await).expect("lines")
    }

    /// The bodies of the open conversation's messages (not system lines).
    pub async fn bodies(&self) -> Vec<String> {
        self.lines()
            .await
            .into_iter()
            .filter(|l| l.author.is_some())
            .map(|l| l.body)
            .collect()
    }

    /// When the chat (its frame entered) first showed messages: the User
    /// Timing mark the widget sets, in ms from the start of its page.
    pub async fn first_paint(&self) -> f64 {
        self.js(
            "var m = performance.getEntriesByName('natter:first-messages')[0];
             return m ? m.startTime : null;",
            vec![],
        )
        .await
        .as_f64()
        .expect("the widget marks when messages first show")
    }

    /// The names of the shell caches the chat's origin holds.
    pub async fn shell_caches(&self) -> Vec<String> {
        let v = self
            .js_async(
                "var done = arguments[arguments.length - 1];
                 caches.keys().then(ks => done(ks.filter(k => k.startsWith('natter-shell-'))),
                                    e => done([String(e)]));",
                vec![],
            )
            .await;
        serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("cache names: {v}"))
    }

    /// The widget's JS files the chat's page loaded (each build names them
    /// by its hash).
    pub async fn loaded_scripts(&self) -> Vec<String> {
        let v = self
            .js(
                r"return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)
                   .filter(p => /^\/widget\/natter-client-[0-9a-f]+(_bg\.wasm|\.js)$/.test(p));",
                vec![],
            )
            .await;
        serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("resources: {v}"))
    }

    /// The messages of a room in this browser's IndexedDB, by seq, read
    /// straight from the database the widget keeps.
    pub async fn cached(&self, site: &str, room: &str) -> Vec<(i64, String)> {
        let v = self
            .js_async(
                "var done = arguments[arguments.length - 1];
                 var req = indexedDB.open(arguments[0]);
                 req.onerror = () => done({error: String(req.error)});
                 req.onsuccess = () => {
                   var db = req.result;
                   var range = IDBKeyRange.bound([arguments[1], 0], [arguments[1], Infinity]);
                   var get = db.transaction('messages').objectStore('messages').getAll(range);
                   get.onerror = () => done({error: String(get.error)});
                   get.onsuccess = () => {
                     db.close();
                     done(get.result.filter(r => r.rec === 'stored' && r.event.kind === 'message')
                       .map(r => [r.event.seq, r.event.body]));
                   };
                 };",
                vec![json!(format!("natter:{site}:{}", self.user)), json!(room)],
            )
            .await;
        serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("reading IndexedDB: {v}"))
    }
}
