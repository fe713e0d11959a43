//! Views drawn into an element one per key, in the order given, each kept
//! while its key stays: the message list's lines, the room list's rooms.
//!
//! Each drawing puts the element's children in order by walking them
//! once from the first, moving or inserting what is not in its place and
//! removing what is left: the result follows from the keys given and the
//! children as they are, not from a record of earlier drawings, so no
//! sequence of lists (reordered, repeated keys, a drawing cut short) can
//! leave the element out of order. A line's view never changes once drawn
//! (what changes it changes its key), so a kept view is only moved.

use leptos::html::ElementType;
use leptos::prelude::*;
use leptos::tachys::view::any_view::AnyViewState;
use std::collections::HashMap;
use std::hash::Hash;
use wasm_bindgen::JsCast;
use web_sys::Element;

/// Draws `items` into `list`'s element whenever either changes, one
/// `view` per `key` ([`Keyed::draw`]), then calls `after` with the
/// element and the items (to keep the scroll where it belongs, say).
pub fn draw_keyed<E, T, K>(
    list: NodeRef<E>,
    items: Signal<Vec<T>>,
    key: impl Fn(&T) -> &K + 'static,
    view: impl Fn(&T) -> AnyView + 'static,
    after: impl Fn(&Element, &[T]) + 'static,
) where
    E: ElementType,
    E::Output: JsCast + Clone + 'static,
    T: Send + Sync + 'static,
    K: Eq + Hash + Clone + 'static,
{
    let drawn = StoredValue::new_local(Keyed::<K>::new());
    Effect::new(move |_| {
        let Some(el) = list.get() else {
            return;
        };
        let el: &Element = el.unchecked_ref();
        items.with(|items| {
            drawn.update_value(|d| d.draw(el, items, &key, &view));
            after(el, items);
        });
    });
}

/// The views drawn, by key, and the keys in the order last drawn.
pub struct Keyed<K> {
    /// The owner of the views' owners (the component's).
    parent: Owner,
    /// The element drawn into.
    into: Option<Element>,
    drawn: HashMap<K, Drawn>,
    order: Vec<K>,
}

/// One key's view: its element, its state and the owner of what it
/// created (signals, effects), cleaned up when the key goes.
struct Drawn {
    node: Element,
    state: AnyViewState,
    owner: Owner,
}

impl<K: Eq + Hash + Clone> Keyed<K> {
    /// Nothing drawn yet; the views' owners will be children of the
    /// current owner.
    pub fn new() -> Self {
        Self {
            parent: Owner::current().unwrap_or_default(),
            into: None,
            drawn: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Draws `items` into `into`, in order: a key drawn before keeps its
    /// view (moved where it now belongs), a new one gets `view(item)`,
    /// and the views of keys no longer given are removed. A key given
    /// twice is drawn once, where it first comes. `view` must make one
    /// element (a view without one is not drawn). Drawn into another
    /// element than before (its parent drew a new one), every view is
    /// built afresh.
    pub fn draw<T>(
        &mut self,
        into: &Element,
        items: &[T],
        key: impl Fn(&T) -> &K,
        view: impl Fn(&T) -> AnyView,
    ) {
        if self.into.as_ref() != Some(into) {
            for (_, gone) in self.drawn.drain() {
                gone.remove();
            }
            self.order.clear();
            self.into = Some(into.clone());
        }
        let mut order = Vec::with_capacity(items.len());
        let mut kept = HashMap::with_capacity(items.len());
        for item in items {
            let k = key(item);
            if kept.contains_key(k) {
                continue;
            }
            let drawn = match self.drawn.remove(k) {
                Some(drawn) => drawn,
                None => match self.build(|| view(item)) {
                    Some(drawn) => drawn,
                    None => continue,
                },
            };
            order.push(k.clone());
            kept.insert(k.clone(), drawn);
        }
        for (_, gone) in self.drawn.drain() {
            gone.remove();
        }
        self.drawn = kept;
        if order != self.order || !self.in_place(into) {
            self.order = order;
            self.place(into);
        }
    }

    /// Makes a view and builds it under an owner of its own: what the
    /// view's components create (signals, effects) lives as long as the
    /// view, not until the drawing's effect runs again.
    fn build(&self, view: impl FnOnce() -> AnyView) -> Option<Drawn> {
        let owner = self.parent.with(Owner::new);
        // Outside any observer: what the view reads is its own business,
        // not a reason to draw the list again.
        let state = owner.with(|| untrack(|| view().build()));
        match state.elements().into_iter().next() {
            Some(node) => Some(Drawn { node, state, owner }),
            None => {
                owner.cleanup();
                None
            }
        }
    }

    /// Whether the element's children are exactly the views, in order
    /// (they are unless something else changed them).
    fn in_place(&self, into: &Element) -> bool {
        if into.child_element_count() as usize != self.order.len() {
            return false;
        }
        match self.order.last().and_then(|k| self.drawn.get(k)) {
            Some(last) => into.last_element_child().as_ref() == Some(&last.node),
            None => true,
        }
    }

    /// Puts the element's children in the order of `self.order`: walks
    /// them once, inserting each view before the first child not yet in
    /// place, then removes whatever follows the last view.
    fn place(&self, into: &Element) {
        let mut next = into.first_element_child();
        for node in self.order.iter().filter_map(|k| self.drawn.get(k)) {
            match &next {
                Some(child) if *child == node.node => next = child.next_element_sibling(),
                _ => {
                    // Only a node that cannot go there is refused (a
                    // detached `next`, say): the next drawing walks again.
                    let _ = into.insert_before(&node.node, next.as_ref().map(|n| n.as_ref()));
                }
            }
        }
        while let Some(stale) = next {
            next = stale.next_element_sibling();
            stale.remove();
        }
    }
}

impl<K: Eq + Hash + Clone> Default for Keyed<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl Drawn {
    fn remove(mut self) {
        self.state.unmount();
        self.node.remove();
        self.owner.cleanup();
    }
}
