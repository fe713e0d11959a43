//! The second connection to the store, for what rexie 0.6 cannot do:
//! transactions with durability `"strict"` (web-sys keeps
//! `IDBTransactionOptions` unstable, hence the binding below).

use super::Db;
use crate::error::ClientError;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransaction};

impl Db {
    /// Runs `write` in a read-write transaction with durability `"strict"`
    /// (the data is on disk when it completes) and waits for it to commit.
    pub(super) async fn strict(
        &self,
        stores: &[&str],
        write: impl FnOnce(&IdbTransaction) -> Result<(), JsValue>,
    ) -> Result<(), ClientError> {
        let names: Array = stores.iter().map(|s| JsValue::from(*s)).collect();
        let options = Object::new();
        Reflect::set(&options, &"durability".into(), &"strict".into())
            .map_err(|e| ClientError::from_js(&e))?;
        let raw: &StrictDb = self.0.raw.unchecked_ref();
        let tx = raw
            .transaction_with_options(&names, "readwrite", &options)
            .map_err(|e| ClientError::from_js(&e))?;
        if let Err(err) = write(&tx) {
            // Nothing of it may land; abort fails only if it already ended.
            let _ = tx.abort();
            return Err(ClientError::from_js(&err));
        }
        let outcome = wait(|resolve, reject| {
            tx.set_oncomplete(Some(resolve));
            tx.set_onabort(Some(reject));
        })
        .await;
        tx.set_oncomplete(None);
        tx.set_onabort(None);
        outcome.map_err(|_| match tx.error() {
            Some(ex) => ClientError::from_js(&ex.into()),
            None => ClientError::Storage("the transaction was aborted".into()),
        })
    }
}

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, seen through the binding web-sys keeps unstable.
    #[wasm_bindgen(extends = IdbDatabase, js_name = IDBDatabase)]
    type StrictDb;

    /// `IDBDatabase.transaction(stores, mode, options)`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &StrictDb,
        stores: &Array,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// Opens a second connection to `name` at whatever version it has; it
/// closes itself when another tab upgrades the database.
pub(super) async fn open_raw(name: &str) -> Result<IdbDatabase, ClientError> {
    let factory = web_sys::window()
        .and_then(|w| w.indexed_db().ok().flatten())
        .ok_or(ClientError::NoStorage)?;
    let request: IdbOpenDbRequest = factory.open(name).map_err(|e| ClientError::from_js(&e))?;
    let outcome = wait(|resolve, reject| {
        request.set_onsuccess(Some(resolve));
        request.set_onerror(Some(reject));
    })
    .await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    let req: &IdbRequest = request.as_ref();
    if outcome.is_err() {
        return Err(match req.error() {
            Ok(Some(ex)) => ClientError::from_js(&ex.into()),
            _ => ClientError::Storage("could not open the database".into()),
        });
    }
    let db: IdbDatabase = req
        .result()
        .map_err(|e| ClientError::from_js(&e))?
        .dyn_into()
        .map_err(|_| ClientError::Storage("open gave no database".into()))?;
    // Leaked on purpose: it lives as long as the connection.
    let on_version_change = Closure::<dyn FnMut(web_sys::Event)>::new({
        let db = db.clone();
        move |_| db.close()
    });
    db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
    on_version_change.forget();
    Ok(db)
}

/// Waits until `arm` has wired one of the two callbacks it gets and that
/// callback fired: `Ok` for the first, `Err` for the second.
async fn wait(arm: impl FnOnce(&Function, &Function)) -> Result<(), ()> {
    let mut held: Vec<Closure<dyn FnMut()>> = Vec::new();
    let mut arm = Some(arm);
    let promise = Promise::new(&mut |resolve: Function, reject: Function| {
        // Calling resolve or reject cannot fail in a way that matters.
        let ok = Closure::<dyn FnMut()>::new(move || {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        });
        let err = Closure::<dyn FnMut()>::new(move || {
            let _ = reject.call0(&JsValue::UNDEFINED);
        });
        if let Some(arm) = arm.take() {
            arm(ok.as_ref().unchecked_ref(), err.as_ref().unchecked_ref());
        }
        held = vec![ok, err];
    });
    let outcome = JsFuture::from(promise).await.map(|_| ()).map_err(|_| ());
    // The callbacks are unhooked by the caller; now they may go.
    drop(held);
    outcome
}
