//! Places in the writer's queue. At most [`MAX_GROUP`] requests wait for
//! the writer; each holds a [`Slot`] from when it is handed over until the
//! writer takes it. Who finds no place waits in line, first come first
//! served, without holding a thread ([`Store::slot`],
//! [`Store::submit_then`]), or blocking its own ([`Store::submit`], for
//! callers that wait for the commit anyway). The writer thread gives the
//! freed places to those waiting, and runs nothing of theirs but a wake-up.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{MAX_GROUP, Store, lock};

/// Who waits for a place: called with it once it is theirs, on the thread
/// that freed it; gives it back if it can no longer use it.
type Waiter = Box<dyn FnOnce(Slot) -> Option<Slot> + Send>;

/// The writer's queue, counted.
pub(crate) struct Queue {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    /// Places held: by requests not yet taken by the writer, or by callers
    /// about to hand one over.
    held: usize,
    waiting: VecDeque<Waiter>,
}

/// A place in the writer's queue, held until the request handed over with
/// it is taken by the writer; dropped unused, it goes to whoever waits
/// next. See [`Store::slot`].
#[must_use = "a slot holds a place in the writer's queue until it is used or dropped"]
pub struct Slot {
    queue: Option<Arc<Queue>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Queue {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            capacity: MAX_GROUP,
            state: Mutex::new(State {
                held: 0,
                waiting: VecDeque::new(),
            }),
        })
    }

    fn slot(self: &Arc<Self>) -> Slot {
        Slot {
            queue: Some(self.clone()),
        }
    }

    /// A place now, if one is free and nobody waits for one.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut s = lock(&self.state);
        if s.held < self.capacity && s.waiting.is_empty() {
            s.held += 1;
            return Some(self.slot());
        }
        None
    }

    /// Gives `then` a place: at once, here, if one is free and nobody
    /// waits; otherwise after those already waiting, on the thread that
    /// frees it.
    pub(crate) fn when_free(self: &Arc<Self>, then: Waiter) {
        {
            let mut s = lock(&self.state);
            if s.held >= self.capacity || !s.waiting.is_empty() {
                s.waiting.push_back(then);
                return;
            }
            s.held += 1;
        }
        // A place given back goes to the next in line.
        drop(then(self.slot()));
    }

    /// A place, waiting for it on this thread if none is free.
    pub(crate) fn take_blocking(self: &Arc<Self>) -> Slot {
        if let Some(s) = self.try_take() {
            return s;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.when_free(Box::new(move |slot| tx.send(slot).err().map(|e| e.0)));
        // The waiter is called before the queue can be dropped: this
        // thread holds the queue.
        rx.recv().unwrap_or_else(|_| self.slot_anyway())
    }

    /// A place beyond the capacity (never reached: see `take_blocking`).
    fn slot_anyway(self: &Arc<Self>) -> Slot {
        lock(&self.state).held += 1;
        self.slot()
    }

    /// A place freed: to the first waiting who can use it, else counted
    /// free.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut s = lock(&self.state);
                match s.waiting.pop_front() {
                    Some(w) => w,
                    None => {
                        s.held = s.held.saturating_sub(1);
                        return;
                    }
                }
            };
            // The place passes on (still held); one given back goes to
            // the next in line.
            match next(self.slot()) {
                None => return,
                Some(mut back) => back.queue = None,
            }
        }
    }

    /// Places held now.
    pub(crate) fn held(&self) -> usize {
        lock(&self.state).held
    }

    /// Callers waiting for a place now.
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.state).waiting.len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(q) = self.queue.take() {
            q.release();
        }
    }
}

/// What [`Store::slot`] returns: resolves to a place in the writer's queue
/// once it is this caller's turn. Dropped before, the place it got (or gets)
/// goes to the next in line.
pub struct SlotWait {
    shared: Arc<Mutex<Waiting>>,
}

#[derive(Default)]
struct Waiting {
    slot: Option<Slot>,
    waker: Option<Waker>,
    dropped: bool,
}

impl Future for SlotWait {
    type Output = Slot;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        let mut w = lock(&self.shared);
        match w.slot.take() {
            Some(slot) => Poll::Ready(slot),
            None => {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        let slot = {
            let mut w = lock(&self.shared);
            w.dropped = true;
            w.slot.take()
        };
        drop(slot);
    }
}

impl Store {
    /// A place in the writer's queue now, if one is free (and nobody
    /// waits for one): hand a write over with it
    /// ([`Store::append_messages_in`]) and it never waits.
    pub fn try_slot(&self) -> Option<Slot> {
        self.queue.try_take()
    }

    /// A place in the writer's queue, in turn: the future resolves once
    /// the writer has taken the requests ahead of it. Callers that must
    /// not hold a thread (an actor) wait for this before handing a write
    /// over ([`Store::append_messages_in`]), and take nothing else in
    /// meanwhile: that is the backpressure a full writer puts on them.
    pub fn slot(&self) -> SlotWait {
        let shared = Arc::new(Mutex::new(Waiting::default()));
        let to = shared.clone();
        self.queue.when_free(Box::new(move |slot| {
            let mut w = lock(&to);
            if w.dropped {
                return Some(slot);
            }
            w.slot = Some(slot);
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
            None
        }));
        SlotWait { shared }
    }

    /// Requests handed to the writer and not yet taken by it, with the
    /// places callers hold to hand one over.
    pub fn queued_writes(&self) -> usize {
        self.queue.held()
    }

    /// Writes (and callers) waiting for a place in the writer's queue.
    pub fn writes_waiting(&self) -> usize {
        self.queue.waiting()
    }
}
