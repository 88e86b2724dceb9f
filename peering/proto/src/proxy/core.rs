//! The proxy state: server transactions, client transactions, and the proxy
//! context that ties one server transaction to its serial targets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::msg::{self, HeaderName, Message, Method, Uri};
use crate::txn::{
    self, ClientInvite, ClientNonInvite, Reliability, ServerInvite, ServerNonInvite, TxnMessage,
    TxnState,
};

use super::hiding::{self, HiddenDialog};
use super::rules::{self, RouteInfo};
use super::shard::Sharded;
use super::types::{
    ConnId, Event, Flow, LocalInterface, ProxyConfig, Rejection, RouteDecision, RouteId, RouteKind,
    Target, Transmit, TransmitToken, Transport,
};

/// The maps' hasher: keys are short and hashed on every message, where
/// SipHash dominated; foldhash's per-map random seed still keeps peers from
/// choosing colliding branches offline.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Identifies a server transaction: RFC 3261 §17.2.3 (branch, sent-by,
/// method; ACK is matched to its INVITE), as one shared string
/// `METHOD SP host:port SP branch`. Clones share it, so the maps and the
/// timer heap hold one allocation per transaction; lookups borrow a `&str`
/// built in a reused buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ServerKey(Arc<str>);

impl std::borrow::Borrow<str> for ServerKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl ServerKey {
    /// Writes the key of `req` into `out`, with ACK folded onto INVITE.
    /// `false` for a message without a top Via or method (the parser
    /// refuses those).
    fn write(out: &mut String, req: &Message) -> bool {
        out.clear();
        let Some(method) = req.method() else {
            return false;
        };
        out.push_str(match method {
            Method::Ack => "INVITE",
            m => m.as_str(),
        });
        // sent-by as written, the host in lower case (host names compare
        // case-insensitively); the port as digits.
        let (host, port) = req.top_via_sent_by();
        out.push(' ');
        out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        out.push(':');
        out.push_str(itoa::Buffer::new().format(port.unwrap_or(0)));
        out.push(' ');
        match req.branch() {
            Some(b)
                if b.len() > rules::MAGIC_COOKIE.len() && b.starts_with(rules::MAGIC_COOKIE) =>
            {
                out.push_str(b)
            }
            // RFC 2543 fallback (§17.2.3): no usable branch, so match on
            // Call-ID, From tag and CSeq number instead.
            _ => {
                let _ = write!(
                    out,
                    "2543|{}|{}|{}",
                    req.call_id(),
                    req.from_tag().unwrap_or(""),
                    req.cseq().seq
                );
            }
        }
        true
    }

    /// The same key for another method (a CANCEL's INVITE).
    fn with_method(&self, method: &str) -> Self {
        let rest = self.0.find(' ').map_or("", |at| &self.0[at..]);
        let mut s = String::with_capacity(method.len() + rest.len());
        s.push_str(method);
        s.push_str(rest);
        Self(Arc::from(s))
    }
}

/// Identifies one of our client transactions: our branch, with ` CANCEL`
/// appended for the CANCEL sharing that branch (§17.1.3). Responses to the
/// INVITE are looked up by their branch alone, without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ClientKey(Arc<str>);

impl std::borrow::Borrow<str> for ClientKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

const CANCEL_SUFFIX: &str = " CANCEL";

impl ClientKey {
    fn new(branch: &str) -> Self {
        Self(Arc::from(branch))
    }

    /// The key of the CANCEL sent on this branch.
    fn cancel(&self) -> Self {
        let mut s = String::with_capacity(self.0.len() + CANCEL_SUFFIX.len());
        s.push_str(&self.0);
        s.push_str(CANCEL_SUFFIX);
        Self(Arc::from(s))
    }
}

/// A request the core keeps: parsed while the typed view is still used,
/// then only its bytes (parsed again in the rare cases that need it, such
/// as a local final response or a failover), so a held call does not keep
/// the parse results of its INVITE.
#[derive(Debug, Clone)]
enum Held {
    Parsed(Message),
    Raw(Bytes),
}

impl Held {
    fn message(&self) -> Option<Message> {
        match self {
            Self::Parsed(m) => Some(m.clone()),
            Self::Raw(b) => Message::parse(b.clone()).ok(),
        }
    }

    /// Drops the parse results, keeping a copy of the bytes at their exact
    /// size (the received buffer may be larger). `share` is another held
    /// request's copy, used when it was made from the same buffer. Returns
    /// the copy when one was made, with the address of the buffer it came
    /// from.
    fn shrink(&mut self, share: Option<&(usize, Bytes)>) -> Option<(usize, Bytes)> {
        let Self::Parsed(m) = self else {
            return None;
        };
        let wire = m.as_bytes();
        let from = wire.as_ptr() as usize;
        let raw = match share {
            Some((addr, copy)) if *addr == from && copy.len() == wire.len() => copy.clone(),
            _ => Bytes::copy_from_slice(wire),
        };
        *self = Self::Raw(raw.clone());
        Some((from, raw))
    }
}

/// Where `part` lies in `whole` (empty when it does not).
fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let base = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= base && at + part.len() <= base + whole.len() {
        at - base..at - base + part.len()
    } else {
        0..0
    }
}

/// A message as the transactions hold it: the bytes to (re)send, or the
/// parsed form (which holds them) when it is already at hand. Messages the
/// node builds itself are not parsed again unless an ACK or a CANCEL has to
/// be made from them.
#[derive(Debug, Clone)]
enum Wire {
    Raw(Bytes),
    Parsed(Message),
}

impl Wire {
    fn bytes(bytes: Bytes) -> Self {
        Self::Raw(bytes)
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Raw(b) => b,
            Self::Parsed(m) => m.to_bytes(),
        }
    }

    fn message(&self) -> Option<Message> {
        match self {
            Self::Raw(b) => Message::parse(b.clone()).ok(),
            Self::Parsed(m) => Some(m.clone()),
        }
    }
}

impl From<Message> for Wire {
    fn from(msg: Message) -> Self {
        Self::Parsed(msg)
    }
}

impl TxnMessage for Wire {
    fn ack_for(request: &Self, response: &Self) -> Self {
        match (request.message(), response.message()) {
            // Held for Timer D (32 s) only to be sent again: its bytes,
            // not its parse results.
            (Some(req), Some(resp)) => Wire::bytes(Message::ack_for(&req, &resp).to_bytes()),
            // Both were valid SIP when they crossed the node; should one no
            // longer parse, re-sending the response is harmless.
            _ => response.clone(),
        }
    }
}

#[derive(Debug)]
enum ServerTxn {
    Invite(ServerInvite<Wire>),
    NonInvite(ServerNonInvite<Wire>),
}

#[derive(Debug)]
struct ServerEntry {
    txn: ServerTxn,
    flow: HeldFlow,
    /// Where responses go (§18.2.2): `flow.remote`, or its address with
    /// this port (see `response_port`).
    response_port: Option<u16>,
    /// The context, while there is one; it holds the request as received.
    ctx: CtxLink,
    armed: Option<TimerKey>,
}

impl ServerEntry {
    /// Where responses go (§18.2.2).
    fn response_to(&self) -> SocketAddr {
        match self.response_port {
            None => self.flow.remote.get(),
            Some(port) => SocketAddr::new(self.flow.remote.get().ip(), port),
        }
    }
}

/// A context's id as the transaction entries hold it: ids start at 1
/// (`Proxy::next_id`), so "none" takes no room of its own (8 bytes where
/// an `Option<u64>` takes 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CtxLink(Option<NonZeroU64>);

impl CtxLink {
    fn to(ctx_id: Option<u64>) -> Self {
        Self(ctx_id.and_then(NonZeroU64::new))
    }

    fn get(self) -> Option<u64> {
        self.0.map(NonZeroU64::get)
    }

    fn take(&mut self) -> Option<u64> {
        self.0.take().map(NonZeroU64::get)
    }
}

#[derive(Debug)]
enum ClientTxn {
    Invite(ClientInvite<Wire>),
    NonInvite(ClientNonInvite<Wire>),
}

/// A socket address in 16 bytes where a `SocketAddr` takes 32: an IPv4
/// one inline, an IPv6 one (rare between carriers) boxed. Transaction
/// entries hold two or three of them for a call's life and 32 s after.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl Addr {
    fn get(&self) -> SocketAddr {
        match self {
            Self::V4(a) => SocketAddr::V4(*a),
            Self::V6(a) => SocketAddr::V6(**a),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(a),
            SocketAddr::V6(a) => Self::V6(Box::new(a)),
        }
    }
}

/// A [`Flow`] as the core holds it, with compact addresses.
#[derive(Debug, Clone)]
struct HeldFlow {
    transport: Transport,
    local: Addr,
    remote: Addr,
    conn: Option<ConnId>,
}

impl HeldFlow {
    fn flow(&self) -> Flow {
        Flow {
            transport: self.transport,
            local: self.local.get(),
            remote: self.remote.get(),
            conn: self.conn,
        }
    }
}

impl From<&Flow> for HeldFlow {
    fn from(flow: &Flow) -> Self {
        Self {
            transport: flow.transport,
            local: flow.local.into(),
            remote: flow.remote.into(),
            conn: flow.conn,
        }
    }
}

/// Where a client transaction sends.
#[derive(Debug, Clone)]
struct Dest {
    transport: Transport,
    remote: Addr,
    server_name: Option<Box<str>>,
}

#[derive(Debug)]
struct ClientEntry {
    txn: ClientTxn,
    /// The context, while the branch may still pass a response to it: until
    /// its final response (see `on_branch_response`).
    ctx: CtxLink,
    /// After a 2xx of a context that is not hidden: the server transaction
    /// its retransmissions (and 2xx from other forks) go to, the context
    /// being gone (RFC 6026 "Accepted").
    upstream: Option<ServerKey>,
    target: Dest,
    got_provisional: bool,
    /// A CANCEL is owed as soon as a provisional response arrives (§9.1).
    cancel_pending: bool,
    /// Timer C fired on this branch: its final response counts as 408.
    timed_out: bool,
    /// Sent over TCP only because of its size (§18.1.1): a transport error
    /// before any response retries the target over UDP. Cleared once the
    /// peer has answered (the connection was up).
    size_switched: bool,
    armed: Option<TimerKey>,
}

/// The transport `Proxy::send_to_target` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// The target's own, or TCP instead of UDP for a large request
    /// (§18.1.1).
    AsRouted,
    /// UDP, for the retry of a request that the size switch sent over TCP
    /// and whose connection could not be set up (§18.1.1).
    UdpRetry,
}

/// What a proxy context is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the routing seam.
    Routing,
    /// Forwarding to targets.
    Forwarding,
    /// A final response was sent upstream.
    Done,
}

#[derive(Debug)]
struct Context {
    server: ServerKey,
    /// The request as received, to build local responses from (and, when
    /// hidden, to restore the caller side's Vias): the server transaction's
    /// request, held here as only a context needs it.
    original: Held,
    /// The request after §16.4 pre-processing.
    request: Held,
    /// Its method and where its Call-ID is in its bytes, kept for events.
    method: Method,
    call_id: std::ops::Range<u32>,
    flow: HeldFlow,
    /// Routed as an initial request (not along a route set).
    initial: bool,
    phase: Phase,
    /// The routing seam's targets and header edits, while anything may
    /// still be forwarded.
    plan: Option<Box<Plan>>,
    /// The index of the next target to try.
    next_target: u32,
    /// Our own Route values at the top of `request`, dropped when it is
    /// forwarded (see `defer_route_info`).
    strip_routes: u32,
    active: Option<ClientKey>,
    /// Best final response so far (§16.7 step 6), with its Via removed;
    /// no message when the branch ended by timeout or transport error.
    /// Boxed: most calls never have one.
    best: Option<Box<(u16, Option<Wire>)>>,
    cancelled: bool,
    /// Timer C's queued entry while it runs.
    timer_c: Option<TimerKey>,
    attempts: u32,
    /// Live client transactions that belong to this context.
    branches: u32,
    /// Hide each side's topology from the other.
    hide: bool,
}

/// What the routing seam decided for a context (see
/// [`RouteDecision::Forward`]), held apart from it: it goes once the last
/// target is on its way, which for most calls is the first, so a ringing
/// call does not keep it.
#[derive(Debug)]
struct Plan {
    targets: Vec<Target>,
    remove_headers: Vec<HeaderName>,
    add_headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerRef {
    Server(ServerKey),
    Client(ClientKey),
    TimerC(u64),
}

/// A queued deadline: when, as nanoseconds from the queue's first
/// deadline, and a sequence number that makes it unique, shifted left two
/// bits to make room for what the timer is for (`TimerQueue::SERVER` ..).
/// 16 bytes, and an `Option` of it too (the word is never 0), where an
/// `Instant` and a `u64` took 24 (32 in an `Option`).
type TimerKey = (i64, NonZeroU64);

/// How many due timers [`Proxy::handle_timeout`] looks up together before
/// handling them (see `Proxy::read_ahead_timers`): their slots, keys and
/// entries, about four cache lines each, stay well within the L1 cache.
const READ_AHEAD: usize = 16;

/// The proxy's deadlines, in order, each removable when what it was for
/// ends or moves. A heap that left cancelled entries in place until they
/// came due held every call's Timer C entry (3 minutes) and every
/// transaction's superseded timers long after the call was gone: memory
/// that grew with the rate times the longest timer, in steps as the heap
/// doubled.
///
/// Every transaction of a finished call keeps a deadline here for up to
/// 32 s, so the entries are small: a transaction's timer holds its key's
/// text (the kind is in the key's low bits), a Timer C entry its context,
/// in a map of its own, both ordered by the same sequence.
#[derive(Debug, Default)]
struct TimerQueue {
    queue: BTreeMap<TimerKey, Arc<str>>,
    timer_c: BTreeMap<TimerKey, u64>,
    /// What the deadlines count from: the first one armed.
    base: Option<Instant>,
    seq: u64,
}

impl TimerQueue {
    const SERVER: u64 = 0;
    const CLIENT: u64 = 1;
    const TIMER_C: u64 = 2;
    const KIND: u64 = 3;

    fn arm(&mut self, at: Instant, timer: TimerRef) -> TimerKey {
        self.seq += 1;
        let kind = match &timer {
            TimerRef::Server(_) => Self::SERVER,
            TimerRef::Client(_) => Self::CLIENT,
            TimerRef::TimerC(_) => Self::TIMER_C,
        };
        // `seq` starts at 1: the word is never 0.
        let word = NonZeroU64::new(self.seq << 2 | kind).unwrap_or(NonZeroU64::MIN);
        let key = (self.tick(at), word);
        match timer {
            TimerRef::Server(ServerKey(text)) | TimerRef::Client(ClientKey(text)) => {
                self.queue.insert(key, text);
            }
            TimerRef::TimerC(ctx_id) => {
                self.timer_c.insert(key, ctx_id);
            }
        }
        key
    }

    fn disarm(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            if key.1.get() & Self::KIND == Self::TIMER_C {
                self.timer_c.remove(&key);
            } else {
                self.queue.remove(&key);
            }
        }
    }

    /// `at` in nanoseconds from the base (the first deadline armed),
    /// saturated at 292 years either way.
    fn tick(&mut self, at: Instant) -> i64 {
        let base = *self.base.get_or_insert(at);
        Self::offset(base, at)
    }

    /// `at` in nanoseconds from `base`, saturated at 292 years either way.
    fn offset(base: Instant, at: Instant) -> i64 {
        match at.checked_duration_since(base) {
            Some(ahead) => i64::try_from(ahead.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(base.duration_since(at).as_nanos()).map_or(i64::MIN, |n| -n),
        }
    }

    /// The deadline of a key.
    fn at(&self, key: TimerKey) -> Option<Instant> {
        let base = self.base?;
        let offset = Duration::from_nanos(key.0.unsigned_abs());
        if key.0 >= 0 {
            base.checked_add(offset)
        } else {
            base.checked_sub(offset)
        }
    }

    /// The earliest key of either map.
    fn first(&self) -> Option<TimerKey> {
        let txn = self.queue.first_key_value().map(|(k, _)| *k);
        let c = self.timer_c.first_key_value().map(|(k, _)| *k);
        match (txn, c) {
            (Some(txn), Some(c)) => Some(txn.min(c)),
            (txn, c) => txn.or(c),
        }
    }

    fn next(&self) -> Option<Instant> {
        self.at(self.first()?)
    }

    /// The greatest key due at `now`: a key is due when it is at most this
    /// (its deadline is at most `now`, whatever its sequence word). `None`
    /// before any deadline was armed.
    fn due_until(&self, now: Instant) -> Option<TimerKey> {
        Some((Self::offset(self.base?, now), NonZeroU64::MAX))
    }

    /// Up to `max` of the transaction timers due at `now`, earliest first,
    /// left in the queue: whether each is a client's and its key's text.
    fn peek_due(&self, now: Instant, max: usize) -> impl Iterator<Item = (bool, &Arc<str>)> {
        self.due_until(now)
            .into_iter()
            .flat_map(move |end| self.queue.range(..=end))
            .take(max)
            .map(|(key, text)| (key.1.get() & Self::KIND == Self::CLIENT, text))
    }

    /// The earliest entry, if due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, TimerRef)> {
        let first = self.first()?;
        if first > self.due_until(now)? {
            return None;
        }
        let kind = first.1.get() & Self::KIND;
        if kind == Self::TIMER_C {
            let ctx_id = self.timer_c.remove(&first)?;
            return Some((first, TimerRef::TimerC(ctx_id)));
        }
        let text = self.queue.remove(&first)?;
        let timer = if kind == Self::CLIENT {
            TimerRef::Client(ClientKey(text))
        } else {
            TimerRef::Server(ServerKey(text))
        };
        Some((first, timer))
    }

    fn len(&self) -> usize {
        self.queue.len() + self.timer_c.len()
    }
}

/// The stateful proxy core. See the module documentation for the polling
/// order.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    counter: u64,
    // Entries are boxed: a map keeps up to half its slots free, and a slot
    // of a pointer costs less than an empty slot of an entry.
    // The three tables that hold an entry per transaction or call are
    // sharded, each on its own lane: no insert rehashes them whole, and
    // their shards grow one at a time (see `shard`).
    servers: Sharded<ServerKey, Box<ServerEntry>>,
    clients: Sharded<ClientKey, Box<ClientEntry>>,
    contexts: Sharded<u64, Box<Context>>,
    pending_routes: Map<u64, u64>,
    /// ACKs waiting for a route: the ACK, its flow, whether its dialog is
    /// hidden, and how many of our Route values the forward drops.
    stateless_routes: Map<u64, (Message, Flow, bool, usize)>,
    timers: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    draining: bool,
    /// Per mille of new calls refused with 503 (see `set_shed_permille`).
    shed_permille: u16,
    /// Spreads the refusals evenly: a refusal each time it reaches 1000.
    shed_credit: u16,
    /// Initial INVITEs refused because of overload.
    overload_rejections: u64,
    /// Dialogs whose topology is hidden, by Call-ID.
    hidden: Map<String, HiddenDialog>,
    /// Reused to build transaction keys for lookups.
    scratch: String,
}

impl Proxy {
    /// A proxy with no transactions.
    pub fn new(config: ProxyConfig) -> Self {
        Self {
            config,
            counter: 0,
            servers: Sharded::new(0),
            clients: Sharded::new(1),
            contexts: Sharded::new(2),
            pending_routes: Map::default(),
            stateless_routes: Map::default(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            draining: false,
            shed_permille: 0,
            shed_credit: 0,
            overload_rejections: 0,
            hidden: Map::default(),
            scratch: String::new(),
        }
    }

    /// While `overloaded` is set, new initial INVITEs are answered 503 with
    /// `Retry-After` statelessly (no transaction is kept): a node that
    /// cannot keep up sheds the calls it cannot carry at the cost of a
    /// parse and a table lookup, instead of letting every call time out in
    /// a storm of retransmissions. Retransmissions of known transactions,
    /// in-dialog requests, ACK and CANCEL are still handled, so calls in
    /// progress finish and free their resources.
    pub fn set_overloaded(&mut self, overloaded: bool) {
        self.set_shed_permille(if overloaded { 1000 } else { 0 });
    }

    /// Refuses this many per mille of new initial INVITEs, as
    /// `set_overloaded` does for all of them, spread evenly (250: every
    /// fourth). A node slightly past its capacity sheds only the excess and
    /// keeps carrying what it can. Values above 1000 count as 1000.
    pub fn set_shed_permille(&mut self, permille: u16) {
        self.shed_permille = permille.min(1000);
        if self.shed_permille == 0 {
            self.shed_credit = 0;
        }
    }

    /// Whether the next new call is to be refused for overload.
    fn shed_next(&mut self) -> bool {
        if self.shed_permille == 0 {
            return false;
        }
        self.shed_credit += self.shed_permille;
        if self.shed_credit >= 1000 {
            self.shed_credit -= 1000;
            true
        } else {
            false
        }
    }

    /// Initial INVITEs refused with 503 because of overload, since start.
    pub fn overload_rejections(&self) -> u64 {
        self.overload_rejections
    }

    /// Graceful shutdown: from now on new requests are answered 503 with
    /// Retry-After (statelessly), while transactions in progress finish.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Live server plus client transactions, for metrics and leak tests.
    pub fn transaction_count(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Queued timers, for leak tests: each belongs to a live transaction or
    /// to a context waiting for a final response.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Live proxy contexts (calls being routed or forwarded).
    pub fn context_count(&self) -> usize {
        self.contexts.len()
    }

    /// Whether no request is waiting for its final response (for graceful
    /// shutdown). Transactions that only absorb retransmissions after their
    /// final response do not count.
    pub fn is_idle(&self) -> bool {
        self.contexts.values().all(|c| c.phase == Phase::Done)
            && self.clients.values().all(|c| {
                let state = match &c.txn {
                    ClientTxn::Invite(t) => t.state(),
                    ClientTxn::NonInvite(t) => t.state(),
                };
                !matches!(
                    state,
                    TxnState::Calling | TxnState::Trying | TxnState::Proceeding
                )
            })
    }

    /// A one-line-per-call description of what is in progress, for logs at
    /// shutdown and for debugging.
    pub fn describe(&self) -> Vec<String> {
        self.contexts
            .values()
            .map(|c| {
                let branch = c
                    .active
                    .as_ref()
                    .and_then(|k| self.clients.get(k))
                    .map(|e| {
                        let state = match &e.txn {
                            ClientTxn::Invite(t) => t.state(),
                            ClientTxn::NonInvite(t) => t.state(),
                        };
                        format!(
                            "{state:?} provisional={} cancel_pending={}",
                            e.got_provisional, e.cancel_pending
                        )
                    });
                format!(
                    "call-id={} method={:?} phase={:?} cancelled={} attempts={} branch={:?}",
                    c.call_id(),
                    Some(&c.method),
                    c.phase,
                    c.cancelled,
                    c.attempts,
                    branch
                )
            })
            .collect()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the edge.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Proxy::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    // ----- inputs -------------------------------------------------------

    /// A message arrived on `flow`.
    pub fn handle_message(&mut self, now: Instant, msg: Message, flow: Flow) {
        if msg.is_request() {
            self.handle_request(now, msg, flow);
        } else {
            self.handle_response(now, msg);
        }
    }

    /// Every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Due timers left from the last read-ahead.
        let mut ahead = 0;
        loop {
            if ahead == 0 {
                ahead = self.read_ahead_timers(now);
            }
            ahead -= 1;
            let Some((armed, timer)) = self.timers.pop_due(now) else {
                break;
            };
            match timer {
                TimerRef::Server(key) => {
                    let Some(entry) = self.servers.get_mut(&key) else {
                        continue;
                    };
                    if entry.armed != Some(armed) {
                        continue;
                    }
                    entry.armed = None;
                    match &mut entry.txn {
                        ServerTxn::Invite(t) => t.handle_timeout(now),
                        ServerTxn::NonInvite(t) => t.handle_timeout(now),
                    }
                    self.drive_server(now, &key);
                }
                TimerRef::Client(key) => {
                    let Some(entry) = self.clients.get_mut(&key) else {
                        continue;
                    };
                    if entry.armed != Some(armed) {
                        continue;
                    }
                    entry.armed = None;
                    match &mut entry.txn {
                        ClientTxn::Invite(t) => t.handle_timeout(now),
                        ClientTxn::NonInvite(t) => t.handle_timeout(now),
                    }
                    self.drive_client(now, &key);
                }
                TimerRef::TimerC(ctx_id) => self.fire_timer_c(now, ctx_id, armed),
            }
        }
    }

    /// Looks up the transactions of the next [`READ_AHEAD`] due timers
    /// before any of them is handled, and returns how many were due (at
    /// least 1, so that the caller asks again only after as many pops).
    ///
    /// The timers that end most transactions (J, K, L, M) fire 5 to 32 s
    /// after their transaction last did anything, so its table slot, key
    /// and entry have long left the caches: handled one by one, each timer
    /// waited for three or four misses in a row, and the timers were 8 %
    /// of the node's CPU (perf, udp-static at 6,000 cps), two thirds of it
    /// in the table lookups. Independent lookups issued together overlap
    /// those misses; the handling that follows finds the lines cached.
    fn read_ahead_timers(&self, now: Instant) -> usize {
        // The keys' text first, all of them: hashing a key waits for it, and
        // these loads depend on nothing else, so they overlap best. Then the
        // lookups, whose slot, key and entry follow one from another. What
        // is read is folded into one value, so that no store waits on a
        // load before the next lookup starts.
        let mut seen = 0usize;
        let mut n = 0;
        for (_, text) in self.timers.peek_due(now, READ_AHEAD) {
            seen ^= usize::from(text.as_bytes().first().copied().unwrap_or(0));
            n += 1;
        }
        if n < 2 {
            // One lookup has nothing to overlap with: its handling does it.
            return 1;
        }
        for (client, text) in self.timers.peek_due(now, READ_AHEAD) {
            let armed = if client {
                self.clients.get(&**text).map(|e| e.armed)
            } else {
                self.servers.get(&**text).map(|e| e.armed)
            };
            seen ^= armed.flatten().map_or(0, |(tick, _)| tick as usize);
        }
        std::hint::black_box(seen);
        n
    }

    /// The edge could not deliver the transmission tagged `token`.
    pub fn handle_transport_error(&mut self, now: Instant, token: TransmitToken) {
        let key = ClientKey(token.0);
        if let Some(entry) = self.clients.get_mut(&key) {
            let state = match &entry.txn {
                ClientTxn::Invite(t) => t.state(),
                ClientTxn::NonInvite(t) => t.state(),
            };
            if !matches!(state, TxnState::Calling | TxnState::Trying) {
                // The peer answered over the connection, so it was set up
                // and had the request: §18.1.1's UDP retry is only for a
                // connection that could not be established.
                entry.size_switched = false;
            }
            match &mut entry.txn {
                ClientTxn::Invite(t) => t.handle_transport_error(now),
                ClientTxn::NonInvite(t) => t.handle_transport_error(now),
            }
            self.drive_client(now, &key);
        }
    }

    /// The routing seam's answer to [`Event::Route`].
    pub fn handle_route(&mut self, now: Instant, id: RouteId, decision: RouteDecision) {
        if let Some((ack, flow, hide, strip_routes)) = self.stateless_routes.remove(&id.0) {
            self.forward_stateless(ack, &flow, decision, hide, strip_routes);
            return;
        }
        let Some(ctx_id) = self.pending_routes.remove(&id.0) else {
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.phase != Phase::Routing {
            return;
        }
        if ctx.cancelled {
            self.finish_with_local(now, ctx_id, 487, "Request Terminated", &[]);
            return;
        }
        match decision {
            RouteDecision::Reject(rejection) => {
                let method = ctx.method.as_str().to_owned();
                let flow = ctx.flow.flow();
                let headers: Vec<(HeaderName, &str)> = rejection
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_str()))
                    .collect();
                self.finish_with_local(now, ctx_id, rejection.status, &rejection.reason, &headers);
                self.events.push_back(Event::Rejected {
                    status: rejection.status,
                    reason: rejection.reason,
                    method,
                    flow,
                });
            }
            RouteDecision::Forward {
                targets,
                remove_headers,
                add_headers,
                hide_topology,
            } => {
                if targets.is_empty() {
                    self.finish_with_local(now, ctx_id, 404, "Not Found", &[]);
                    return;
                }
                ctx.hide |= hide_topology;
                ctx.plan = Some(Box::new(Plan {
                    targets,
                    remove_headers,
                    add_headers,
                }));
                ctx.phase = Phase::Forwarding;
                self.forward_next(now, ctx_id);
            }
        }
    }

    // ----- requests -----------------------------------------------------

    fn handle_request(&mut self, now: Instant, req: Message, flow: Flow) {
        let Some(method) = req.method().cloned() else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        if !ServerKey::write(&mut scratch, &req) {
            self.scratch = scratch;
            return;
        }
        // Retransmissions and the ACK of a non-2xx final response.
        let known = self
            .servers
            .get_key_value(scratch.as_str())
            .map(|(k, _)| k.clone());
        if let Some(key) = known {
            self.scratch = scratch;
            if let Some(entry) = self.servers.get_mut(&key) {
                match (&mut entry.txn, &method) {
                    (ServerTxn::Invite(t), Method::Ack) => t.handle_ack(now, req.into()),
                    (ServerTxn::Invite(t), _) => t.handle_request(now),
                    (ServerTxn::NonInvite(t), _) => t.handle_request(now),
                }
            }
            self.drive_server(now, &key);
            return;
        }
        let key = ServerKey(Arc::from(scratch.as_str()));
        self.scratch = scratch;
        let shed = method == Method::Invite && req.to_tag().is_none() && self.shed_next();
        if shed {
            self.overload_rejections += 1;
        }
        if shed || (self.draining && !matches!(method, Method::Ack | Method::Cancel)) {
            let retry_after = if shed { "1" } else { "5" };
            let bytes = msg::response_to(
                &req,
                503,
                "Service Unavailable",
                Some(&self.local_tag(&req)),
                &[(HeaderName::RetryAfter, retry_after)],
            );
            self.transmits.push_back(Transmit {
                transport: flow.transport,
                remote: response_address(&req, &flow),
                local: Some(flow.local),
                conn: flow.conn,
                server_name: None,
                bytes,
                token: None,
            });
            return;
        }
        match method {
            Method::Ack => self.handle_stray_ack(now, req, flow),
            Method::Cancel => self.handle_cancel(now, req, flow, &key),
            _ => self.handle_new_request(now, req, flow, key),
        }
    }

    /// Creates the server transaction for a new request.
    fn new_server(&mut self, req: &Message, flow: &Flow, key: &ServerKey) {
        let reliability = reliability(flow.transport);
        let txn = if req.method() == Some(&Method::Invite) {
            ServerTxn::Invite(ServerInvite::new(reliability, self.config.timers))
        } else {
            ServerTxn::NonInvite(ServerNonInvite::new(reliability, self.config.timers))
        };
        let response_port = response_port(req, flow);
        self.servers.insert(
            key.clone(),
            Box::new(ServerEntry {
                txn,
                flow: flow.into(),
                response_port,
                ctx: CtxLink::default(),
                armed: None,
            }),
        );
    }

    fn handle_new_request(&mut self, now: Instant, req: Message, flow: Flow, key: ServerKey) {
        self.new_server(&req, &flow, &key);
        let is_invite = req.method() == Some(&Method::Invite);
        if is_invite {
            // §16.2 / §17.2.1: a 100 at once, so the upstream stops retransmitting.
            let trying = msg::response_to(&req, 100, "Trying", None, &[]);
            self.respond_bytes(now, &key, 100, trying);
        }

        // OPTIONS addressed to this node, or with Max-Forwards 0 (§16.3 item 3
        // allows a proxy to answer it itself).
        let to_us = req
            .request_uri()
            .is_some_and(|u| is_node_uri(u, &self.config.interfaces, &self.config.domains));
        // §16.4 once per request: the OPTIONS check and routing both use it.
        let routes = rules::preprocess_routes(&req, &self.config.interfaces, &self.config.domains);
        let has_foreign_route = routes.as_ref().is_ok_and(|info| info.next_route.is_some());
        if req.method() == Some(&Method::Options)
            && ((to_us && !has_foreign_route) || req.max_forwards() == Some(0))
        {
            let allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, MESSAGE, NOTIFY, SUBSCRIBE";
            let resp = msg::response_to(
                &req,
                200,
                "OK",
                Some(&self.local_tag(&req)),
                &[
                    (HeaderName::Allow, allow),
                    (HeaderName::Server, &self.config.server_header.clone()),
                    (HeaderName::Other("Accept".to_owned()), "application/sdp"),
                ],
            );
            self.respond_bytes(now, &key, 200, resp);
            return;
        }

        if let Err(rejection) = rules::validate_request(&req) {
            self.reject(now, &key, &req, &flow, rejection);
            return;
        }
        if rules::is_loop(&req, &self.config.interfaces, &self.config.domains) {
            self.reject(now, &key, &req, &flow, Rejection::new(482, "Loop Detected"));
            return;
        }
        let info = match routes {
            Ok(info) => info,
            Err(rejection) => {
                self.reject(now, &key, &req, &flow, rejection);
                return;
            }
        };
        let in_dialog = req.to_tag().is_some();
        let through_us = info.own_routes > 0 || info.strict_router_fix;
        let mut hide = false;
        let mut strip_routes = 0;
        let (kind, routed) = if in_dialog && self.hidden.contains_key(req.call_id()) {
            match self.restore_hidden(now, &req) {
                Some(restored) => {
                    hide = true;
                    restored
                }
                None => {
                    self.reject(
                        now,
                        &key,
                        &req,
                        &flow,
                        Rejection::new(481, "Call/Transaction Does Not Exist"),
                    );
                    return;
                }
            }
        } else if in_dialog && through_us {
            let next_hop = match (&info.next_route, &info.request_uri) {
                (Some(route), _) => route.uri.clone(),
                (None, Some(uri)) => uri.clone(),
                (None, None) => match req.request_uri() {
                    Some(uri) => uri.clone(),
                    None => return,
                },
            };
            let (routed, strip) = defer_route_info(&req, &info);
            strip_routes = strip;
            (RouteKind::InDialog { next_hop }, routed)
        } else {
            // A remaining Route that is not ours (a pre-loaded route) stays
            // in the request: the routing seam decides whether to honour it.
            (RouteKind::Initial, apply_route_info(&req, &info))
        };
        let Some(method) = req.method().cloned() else {
            return;
        };
        let ctx_id = self.next_id();
        let call_id = range_in(routed.as_bytes(), routed.call_id().as_bytes());
        let call_id = match (u32::try_from(call_id.start), u32::try_from(call_id.end)) {
            (Ok(start), Ok(end)) => start..end,
            _ => 0..0,
        };
        self.contexts.insert(
            ctx_id,
            Box::new(Context {
                server: key.clone(),
                original: Held::Parsed(req.clone()),
                request: Held::Parsed(routed.clone()),
                method,
                call_id,
                flow: (&flow).into(),
                initial: kind == RouteKind::Initial,
                phase: Phase::Routing,
                plan: None,
                next_target: 0,
                strip_routes: u32::try_from(strip_routes).unwrap_or(u32::MAX),
                active: None,
                best: None,
                cancelled: false,
                timer_c: None,
                attempts: 0,
                branches: 0,
                hide,
            }),
        );
        if let Some(entry) = self.servers.get_mut(&key) {
            entry.ctx = CtxLink::to(Some(ctx_id));
        }
        let route_id = self.next_id();
        self.pending_routes.insert(route_id, ctx_id);
        self.events.push_back(Event::Route {
            id: RouteId(route_id),
            request: routed,
            flow,
            kind,
        });
    }

    /// An in-dialog request of a hidden dialog, with the real remote target
    /// and route set of the side it goes to put back. `None` when that side
    /// is not known yet (no response carried its Contact).
    fn restore_hidden(&mut self, now: Instant, req: &Message) -> Option<(RouteKind, Message)> {
        let dialog = self.hidden.get_mut(req.call_id())?;
        let from_a = req.from_tag() == Some(dialog.a_tag.as_str());
        let (contact, routes) = dialog.next_hop(from_a)?;
        if req.method() == Some(&Method::Bye) {
            // Keep it a little for retransmissions and the BYE's response.
            dialog.expires = now + self.config.timers.timeout();
        }
        let target = hiding::uri_of(&contact)?;
        let mut editor = req.edit();
        editor.set_request_uri(&target);
        editor.remove_header(&HeaderName::Route);
        for route in &routes {
            editor.append_header(HeaderName::Route, route);
        }
        let routed = Message::parse(editor.finish()).ok()?;
        let next_hop = match routes.first() {
            Some(route) => hiding::uri_of(route)?,
            None => target,
        };
        Some((RouteKind::InDialog { next_hop }, routed))
    }

    /// A response of a hidden context on its way upstream: the caller
    /// side's Vias back from the server transaction, the callee side's
    /// Record-Route and Contact replaced by the node's (and remembered).
    fn hide_response(&mut self, ctx_id: u64, resp: &Message) -> Option<Wire> {
        let ctx = self.contexts.get(&ctx_id)?;
        let entry = self.servers.get(&ctx.server)?;
        let mut editor = resp.edit();
        hiding::restore_vias(&mut editor, &ctx.original.message()?);
        let status = resp.status().unwrap_or(0);
        let call_id = resp.call_id().to_owned();
        let facing_a = self
            .config
            .interfaces
            .iter()
            .find(|i| i.transport == entry.flow.transport && i.addr == entry.flow.local.get())
            .cloned()
            .unwrap_or_else(|| {
                self.outbound_interface(entry.flow.transport, entry.flow.remote.get())
            });
        let dialog_forming = ctx.initial && (101..300).contains(&status);
        if let Some(contact) = hiding::first_contact(resp) {
            editor.set_header(HeaderName::Contact, &hiding::node_contact(&facing_a));
            if let Some(dialog) = self.hidden.get_mut(&call_id)
                && (dialog_forming || (200..300).contains(&status))
            {
                dialog.b_contact = Some(contact);
            }
        }
        if dialog_forming {
            let values: Vec<String> = resp
                .header_values(&HeaderName::RecordRoute)
                .into_iter()
                .map(|v| v.trim().to_owned())
                .collect();
            let first_ours = values.iter().position(|v| {
                hiding::uri_of(v).is_some_and(|u| {
                    rules::is_local_uri(&u, &self.config.interfaces, &self.config.domains)
                })
            });
            if let Some(first_ours) = first_ours {
                let (b_side, ours) = values.split_at(first_ours);
                let a_routes = self
                    .hidden
                    .get(&call_id)
                    .map(|d| d.a_routes.clone())
                    .unwrap_or_default();
                editor.remove_header(&HeaderName::RecordRoute);
                for value in ours.iter().chain(a_routes.iter()) {
                    editor.append_header(HeaderName::RecordRoute, value);
                }
                if let Some(dialog) = self.hidden.get_mut(&call_id) {
                    dialog.b_routes = b_side.to_vec();
                }
            }
        }
        Some(Wire::bytes(editor.finish()))
    }

    /// An ACK that matched no server transaction: the ACK of a 2xx, which a
    /// proxy forwards statelessly along the route set (§16.11, RFC 6026).
    fn handle_stray_ack(&mut self, now: Instant, req: Message, flow: Flow) {
        if rules::validate_request(&req).is_err()
            || rules::is_loop(&req, &self.config.interfaces, &self.config.domains)
        {
            return;
        }
        // The ACK of a final response this node sent without a transaction
        // (503 while overloaded or draining) is hop by hop and ends here.
        if req
            .to()
            .tag()
            .is_some_and(|tag| self.is_local_tag(&req, tag))
        {
            return;
        }
        if self.hidden.contains_key(req.call_id()) {
            let Some((kind, routed)) = self.restore_hidden(now, &req) else {
                return;
            };
            let id = self.next_id();
            self.stateless_routes
                .insert(id, (routed.clone(), flow.clone(), true, 0));
            self.events.push_back(Event::Route {
                id: RouteId(id),
                request: routed,
                flow,
                kind,
            });
            return;
        }
        let Ok(info) =
            rules::preprocess_routes(&req, &self.config.interfaces, &self.config.domains)
        else {
            return;
        };
        let through_us = info.own_routes > 0 || info.strict_router_fix;
        if !through_us && info.next_route.is_some() {
            return;
        }
        let kind = if through_us {
            let next_hop = match (&info.next_route, &info.request_uri, req.request_uri()) {
                (Some(route), _, _) => route.uri.clone(),
                (None, Some(uri), _) | (None, None, Some(uri)) => uri.clone(),
                (None, None, None) => return,
            };
            RouteKind::InDialog { next_hop }
        } else {
            RouteKind::Initial
        };
        // Not through us: no Route value of ours and no Request-URI to fix,
        // so this is the request as received.
        let (routed, strip_routes) = defer_route_info(&req, &info);
        let id = self.next_id();
        self.stateless_routes
            .insert(id, (routed.clone(), flow.clone(), false, strip_routes));
        self.events.push_back(Event::Route {
            id: RouteId(id),
            request: routed,
            flow,
            kind,
        });
    }

    fn forward_stateless(
        &mut self,
        ack: Message,
        flow: &Flow,
        decision: RouteDecision,
        hide: bool,
        strip_routes: usize,
    ) {
        let RouteDecision::Forward { targets, .. } = decision else {
            return;
        };
        let Some(target) = targets.into_iter().next() else {
            return;
        };
        let branch =
            rules::stateless_branch(ack.branch().unwrap_or_default(), self.config.instance);
        let out = self.outbound_interface(target.transport, target.remote);
        let mut editor = ack.edit();
        for _ in 0..strip_routes {
            editor.remove_first_value(&HeaderName::Route);
        }
        if ack.to_tag().is_none() || !matches!(ack.request_uri(), Some(u) if *u == target.uri) {
            // Initial-style routing decided a new Request-URI.
            editor.set_request_uri(&target.uri);
        }
        editor.set_max_forwards(ack.max_forwards().map_or(70, |m| m.saturating_sub(1)));
        if hide {
            editor.remove_header(&HeaderName::Via);
        }
        editor.prepend_header(HeaderName::Via, &via_value(&out, target.transport, &branch));
        let _ = flow;
        self.transmits.push_back(Transmit {
            transport: target.transport,
            remote: target.remote,
            local: Some(out.addr),
            conn: None,
            server_name: target.server_name.clone(),
            bytes: editor.finish(),
            token: None,
        });
    }

    /// §16.10 and §9.2: CANCEL ends the matching INVITE's forwarding.
    fn handle_cancel(&mut self, now: Instant, req: Message, flow: Flow, key: &ServerKey) {
        let invite_key = key.with_method("INVITE");
        self.new_server(&req, &flow, key);
        if !self.servers.contains_key(&invite_key) {
            let resp = msg::response_to(
                &req,
                481,
                "Call/Transaction Does Not Exist",
                Some(&self.local_tag(&req)),
                &[],
            );
            self.respond_bytes(now, key, 481, resp);
            return;
        }
        let resp = msg::response_to(&req, 200, "OK", Some(&self.local_tag(&req)), &[]);
        self.respond_bytes(now, key, 200, resp);
        let ctx_id = self.servers.get(&invite_key).and_then(|e| e.ctx.get());
        let Some(ctx_id) = ctx_id else {
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.cancelled || ctx.phase == Phase::Done {
            return;
        }
        ctx.cancelled = true;
        match ctx.phase {
            Phase::Routing => {
                // The router will answer later; reply 487 now and ignore it.
                self.finish_with_local(now, ctx_id, 487, "Request Terminated", &[]);
            }
            Phase::Forwarding => {
                if let Some(active) = ctx.active.clone() {
                    self.cancel_branch(now, &active);
                } else {
                    self.finish_with_local(now, ctx_id, 487, "Request Terminated", &[]);
                }
            }
            Phase::Done => {}
        }
    }

    /// Sends a CANCEL on a client INVITE branch, or remembers to once it has
    /// seen a provisional response (§9.1).
    fn cancel_branch(&mut self, now: Instant, key: &ClientKey) {
        let Some(entry) = self.clients.get_mut(key) else {
            return;
        };
        if !entry.got_provisional {
            entry.cancel_pending = true;
            return;
        }
        entry.cancel_pending = false;
        // The INVITE as forwarded, from the transaction that holds it.
        let invite = match &entry.txn {
            ClientTxn::Invite(t) => t.request().and_then(Wire::message),
            ClientTxn::NonInvite(_) => None,
        };
        let Some(cancel) = invite.and_then(|invite| build_cancel(&invite)) else {
            return;
        };
        let target = entry.target.clone();
        let cancel_key = key.cancel();
        if self.clients.contains_key(&cancel_key) {
            return;
        }
        let txn = ClientTxn::NonInvite(ClientNonInvite::new(
            now,
            cancel.into(),
            reliability(target.transport),
            self.config.timers,
        ));
        self.insert_client(cancel_key.clone(), txn, None, target, false);
        self.drive_client(now, &cancel_key);
    }

    // ----- forwarding ---------------------------------------------------

    /// §16.6: sends the request to the next target, or finishes the context
    /// when none is left.
    fn forward_next(&mut self, now: Instant, ctx_id: u64) {
        loop {
            let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
                return;
            };
            if ctx.cancelled {
                self.finish_best(now, ctx_id);
                return;
            }
            let index = ctx.next_target as usize;
            if index >= ctx.plan.as_ref().map_or(0, |p| p.targets.len()) {
                self.finish_best(now, ctx_id);
                return;
            }
            ctx.next_target += 1;
            ctx.attempts += 1;
            match self.send_to_target(now, ctx_id, index, Carry::AsRouted) {
                Ok(()) => return,
                Err(()) => continue,
            }
        }
    }

    /// RFC 3261 §18.1.1: the branch `key`, sent over TCP only because of
    /// its size, could not set up its connection, so the same target is
    /// tried once more over UDP (a new client transaction, as a new branch
    /// needs). `false` when that does not apply and the branch fails.
    fn retry_over_udp(&mut self, now: Instant, key: &ClientKey) -> bool {
        let Some(ctx_id) = self
            .clients
            .get(key)
            .filter(|e| e.size_switched)
            .and_then(|e| e.ctx.get())
        else {
            return false;
        };
        let Some(ctx) = self.contexts.get(&ctx_id) else {
            return false;
        };
        if ctx.cancelled || ctx.phase != Phase::Forwarding || ctx.active.as_ref() != Some(key) {
            return false;
        }
        // Targets are tried one at a time (`forward_next`): the active
        // branch went to the one before `next_target`.
        let Some(index) = (ctx.next_target as usize).checked_sub(1) else {
            return false;
        };
        self.detach_client(key);
        if self
            .send_to_target(now, ctx_id, index, Carry::UdpRetry)
            .is_err()
        {
            self.on_branch_final(now, ctx_id, 503, None);
            self.maybe_drop_context(ctx_id);
        }
        true
    }

    /// Forwards the context's request to its target number `index`, over
    /// the transport `carry` picks.
    fn send_to_target(
        &mut self,
        now: Instant,
        ctx_id: u64,
        index: usize,
        carry: Carry,
    ) -> Result<(), ()> {
        let branch_id = self.next_id();
        let Some(ctx) = self.contexts.get(&ctx_id) else {
            return Err(());
        };
        let Some(target) = ctx.plan.as_ref().and_then(|p| p.targets.get(index)) else {
            return Err(());
        };
        let mut transport = target.transport;
        let Some(req) = ctx.request.message() else {
            return Err(());
        };
        let req = &req;
        let method = ctx.method.clone();
        let initial = ctx.initial;
        let strip_routes = ctx.strip_routes as usize;
        let hash = rules::loop_hash_after(req, strip_routes);
        let branch = rules::make_branch(hash, self.config.instance, branch_id);

        // RFC 3261 §18.1.1: large requests move to a congestion-controlled
        // transport unless the target asked for UDP explicitly (or this is
        // the retry over UDP after that move failed).
        let mut size_switched = false;
        if transport == Transport::Udp
            && carry == Carry::AsRouted
            && let Some(limit) = self.config.udp_switch_size
            && req.as_bytes().len() + 200 > limit
            && !matches!(&target.uri, Uri::Sip(s) if s.transport().is_some())
        {
            transport = Transport::Tcp;
            size_switched = true;
        }

        let out = self.outbound_ref(transport, target.remote);
        let hide = ctx.hide;
        let mut editor = req.edit();
        for _ in 0..strip_routes {
            editor.remove_first_value(&HeaderName::Route);
        }
        if initial {
            editor.set_request_uri(&target.uri);
        }
        if hide {
            // The other side sees only this node: our Via (added below), our
            // Record-Route, our Contact.
            editor.remove_header(&HeaderName::Via);
            editor.remove_header(&HeaderName::RecordRoute);
            if hiding::first_contact(req).is_some() {
                editor.set_header(HeaderName::Contact, &hiding::node_contact(&out));
            }
        }
        editor.set_max_forwards(req.max_forwards().map_or(70, |m| m.saturating_sub(1)));
        if let Some(plan) = &ctx.plan {
            for name in &plan.remove_headers {
                editor.remove_header(name);
            }
            for (name, value) in &plan.add_headers {
                editor.append_header(name.clone(), value);
            }
        }
        if initial && self.config.record_route && rules::creates_dialog(&method) {
            let inbound = self
                .config
                .interfaces
                .iter()
                .find(|i| i.transport == ctx.flow.transport && i.addr == ctx.flow.local.get());
            // Two entries when the legs differ in transport or interface
            // (RFC 5658 double record-routing), so that in-dialog requests
            // from either side find the right interface.
            if let Some(inbound) = inbound
                && (inbound.transport != out.transport || inbound.addr != out.addr)
            {
                editor.prepend_header(HeaderName::RecordRoute, &record_route_value(inbound));
            }
            editor.prepend_header(HeaderName::RecordRoute, &record_route_value(&out));
        }
        editor.prepend_header(HeaderName::Via, &via_value(&out, transport, &branch));
        // Held by the client transaction for its whole life; Editor::finish
        // allocates the message's own size, so it is kept as it is.
        let forwarded = editor.finish();
        let dest = Dest {
            transport,
            remote: target.remote.into(),
            server_name: target.server_name.as_deref().map(Box::from),
        };
        if hide && initial && rules::creates_dialog(&method) {
            self.remember_hidden(now, req_for_hiding(&self.contexts, ctx_id));
        }
        let key = ClientKey::new(&branch);
        let reliability = reliability(transport);
        let txn = if method == Method::Invite {
            ClientTxn::Invite(ClientInvite::new(
                now,
                Wire::bytes(forwarded),
                reliability,
                self.config.timers,
            ))
        } else {
            ClientTxn::NonInvite(ClientNonInvite::new(
                now,
                Wire::bytes(forwarded),
                reliability,
                self.config.timers,
            ))
        };
        self.insert_client(key.clone(), txn, Some(ctx_id), dest, size_switched);
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.active = Some(key.clone());
            let targets = ctx.plan.as_ref().map_or(0, |p| p.targets.len());
            if !size_switched && ctx.next_target as usize >= targets {
                // The last target is on its way for good: nothing is
                // forwarded again, so the list and the header edits need
                // not be held while the call rings. A size-switched branch
                // keeps them for its retry over UDP.
                ctx.plan = None;
            }
            if !hide {
                // Forwarded: keep only the bytes of the request (at their
                // exact size) until a failover or a local response needs it
                // parsed again.
                let shared = ctx.original.shrink(None);
                ctx.request.shrink(shared.as_ref());
            }
            if method == Method::Invite {
                let at = now + self.config.timer_c;
                self.timers.disarm(ctx.timer_c.take());
                ctx.timer_c = Some(self.timers.arm(at, TimerRef::TimerC(ctx_id)));
            }
        }
        self.drive_client(now, &key);
        Ok(())
    }

    /// Starts remembering a hidden dialog (its caller side).
    fn remember_hidden(&mut self, now: Instant, req: Option<Message>) {
        let Some(req) = req else {
            return;
        };
        if self.counter.is_multiple_of(1024) {
            self.hidden.retain(|_, d| d.expires > now);
        }
        let call_id = req.call_id().to_owned();
        if self.hidden.contains_key(&call_id) {
            return;
        }
        self.hidden.insert(
            call_id,
            HiddenDialog {
                a_tag: req.from_tag().unwrap_or_default().to_owned(),
                a_contact: hiding::first_contact(&req),
                a_routes: req
                    .header_values(&HeaderName::RecordRoute)
                    .into_iter()
                    .map(|v| v.trim().to_owned())
                    .collect(),
                b_contact: None,
                b_routes: Vec::new(),
                // A dialog is forgotten 12 hours after it started at most.
                expires: now + Duration::from_secs(12 * 3600),
            },
        );
    }

    /// Hidden dialogs remembered (for metrics and tests).
    pub fn hidden_dialogs(&self) -> usize {
        self.hidden.len()
    }

    fn insert_client(
        &mut self,
        key: ClientKey,
        txn: ClientTxn,
        ctx: Option<u64>,
        target: Dest,
        size_switched: bool,
    ) {
        if let Some(ctx) = ctx.and_then(|c| self.contexts.get_mut(&c)) {
            ctx.branches += 1;
        }
        self.clients.insert(
            key,
            Box::new(ClientEntry {
                txn,
                ctx: CtxLink::to(ctx),
                upstream: None,
                target,
                got_provisional: false,
                cancel_pending: false,
                timed_out: false,
                size_switched,
                armed: None,
            }),
        );
    }

    /// The interface to send from towards `remote` over `transport`: same
    /// transport and address family if possible.
    fn outbound_interface(&self, transport: Transport, remote: SocketAddr) -> LocalInterface {
        self.outbound_ref(transport, remote).into_owned()
    }

    /// [`Proxy::outbound_interface`], borrowed when no field changes.
    fn outbound_ref(
        &self,
        transport: Transport,
        remote: SocketAddr,
    ) -> std::borrow::Cow<'_, LocalInterface> {
        use std::borrow::Cow;
        let ifaces = &self.config.interfaces;
        let same_family = |i: &&LocalInterface| i.addr.is_ipv4() == remote.is_ipv4();
        let found = ifaces
            .iter()
            .filter(same_family)
            .find(|i| i.transport == transport)
            .or_else(|| ifaces.iter().find(|i| i.transport == transport))
            .or_else(|| ifaces.iter().find(same_family))
            .or_else(|| ifaces.first());
        match found {
            Some(i) if i.transport == transport => Cow::Borrowed(i),
            Some(i) => Cow::Owned(LocalInterface {
                transport,
                ..i.clone()
            }),
            None => Cow::Owned(LocalInterface {
                transport,
                addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
                host: "127.0.0.1".to_owned(),
                port: 5060,
            }),
        }
    }

    // ----- responses ----------------------------------------------------

    fn handle_response(&mut self, now: Instant, resp: Message) {
        let status = resp.status().unwrap_or(0);
        let Some(branch) = resp.branch() else {
            self.events.push_back(Event::StrayResponse { status });
            return;
        };
        let found = if resp.cseq().method == Method::Cancel {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.push_str(branch);
            scratch.push_str(CANCEL_SUFFIX);
            let found = self.clients.get_key_value(scratch.as_str());
            let found = found.map(|(k, _)| k.clone());
            self.scratch = scratch;
            found
        } else {
            self.clients.get_key_value(branch).map(|(k, _)| k.clone())
        };
        let Some((key, entry)) = found.and_then(|k| self.clients.get_mut(&k).map(|e| (k, e)))
        else {
            // §16.7 step 1: a stateful proxy has no business with a response
            // that matches nothing of its own; dropping it also stops
            // reflection (RFC 4475 bcast).
            self.events.push_back(Event::StrayResponse { status });
            return;
        };
        match &mut entry.txn {
            ClientTxn::Invite(t) => t.handle_response(now, status, resp.into()),
            ClientTxn::NonInvite(t) => t.handle_response(now, status, resp.into()),
        }
        self.drive_client(now, &key);
    }

    /// A response from a client branch reached the TU (§16.7).
    fn on_branch_response(&mut self, now: Instant, key: &ClientKey, status: u16, resp: Message) {
        let Some(entry) = self.clients.get_mut(key) else {
            return;
        };
        let Some(ctx_id) = entry.ctx.get() else {
            // A 2xx retransmission (or a 2xx from another fork) of an
            // answered call, whose context is gone: relayed as the first 2xx
            // was (§16.7 step 5, RFC 6026).
            if let Some(server) = entry.upstream.clone()
                && (200..300).contains(&status)
                && let Some(upstream) = strip_top_via(&resp)
            {
                self.respond_message(now, &server, status, upstream);
            }
            // Otherwise our own CANCEL's response, or a response after the
            // branch's final one: nothing to relay.
            return;
        };
        if (101..200).contains(&status) {
            entry.got_provisional = true;
        }
        let timed_out = entry.timed_out;
        if (100..200).contains(&status) && entry.cancel_pending {
            self.cancel_branch(now, key);
        }
        // Step 3: remove our Via. A branch that Timer C ended answers with
        // a local 408, not with the 487 its CANCEL provoked; but a 2xx that
        // crossed the CANCEL is the callee's answer and goes up (step 5).
        let hide = self.contexts.get(&ctx_id).is_some_and(|c| c.hide);
        let upstream = if timed_out && status >= 300 {
            None
        } else if hide {
            self.hide_response(ctx_id, &resp)
        } else {
            strip_top_via(&resp)
        };
        match status {
            100 => {}
            101..=199 => {
                if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
                    if ctx.phase == Phase::Done {
                        return;
                    }
                    // §16.7 step 2: a provisional response resets Timer C.
                    if let Some(running) = ctx.timer_c.take() {
                        self.timers.disarm(Some(running));
                        let at = now + self.config.timer_c;
                        ctx.timer_c = Some(self.timers.arm(at, TimerRef::TimerC(ctx_id)));
                    }
                    let server = ctx.server.clone();
                    if let Some(resp) = upstream {
                        // Held by the server transaction until the final
                        // response: stored at its exact size.
                        let resp = Wire::bytes(Bytes::copy_from_slice(&resp.into_bytes()));
                        self.respond_message(now, &server, status, resp);
                    }
                }
            }
            200..=299 => {
                // Step 5: every 2xx is forwarded at once, even after another.
                // The branch passes no other response up: it leaves the
                // context, so that the context goes with this 2xx. Its 2xx
                // retransmissions go straight to the server transaction; a
                // hidden call's need the context to rewrite them, so that
                // branch stays linked until it ends (Timer M).
                if !hide {
                    let server = self.contexts.get(&ctx_id).map(|c| c.server.clone());
                    self.detach_client(key);
                    if let Some(entry) = self.clients.get_mut(key) {
                        entry.upstream = server;
                    }
                }
                let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
                    return;
                };
                let first = ctx.phase != Phase::Done;
                ctx.phase = Phase::Done;
                self.timers.disarm(ctx.timer_c.take());
                let server = ctx.server.clone();
                let call_final = first.then(|| Event::CallFinal {
                    call_id: ctx.call_id().to_owned(),
                    status,
                    attempts: ctx.attempts as usize,
                });
                if let Some(resp) = upstream {
                    self.respond_message(now, &server, status, resp);
                }
                if let Some(event) = call_final {
                    self.events.push_back(event);
                }
            }
            _ => {
                // The branch's machine absorbs what follows its non-2xx
                // final response (§17.1.1.2, §17.1.2.2): it leaves the
                // context, which may then go as soon as it has answered.
                self.detach_client(key);
                let effective = if timed_out { 408 } else { status };
                self.on_branch_final(now, ctx_id, effective, upstream);
            }
        }
    }

    /// A branch ended with a non-2xx final response (or a timeout or a
    /// transport error, given as 408 and 503 with no message).
    fn on_branch_final(&mut self, now: Instant, ctx_id: u64, status: u16, upstream: Option<Wire>) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.phase == Phase::Done {
            return;
        }
        ctx.active = None;
        self.timers.disarm(ctx.timer_c.take());
        let better = ctx
            .best
            .as_ref()
            .is_none_or(|best| rules::response_rank(status) < rules::response_rank(best.0));
        if better {
            // Without a message (timeout, transport error) a local response
            // is generated for the status.
            ctx.best = Some(Box::new((status, upstream)));
        }
        let six = (600..700).contains(&status);
        if !ctx.cancelled && !six && rules::is_failover_status(status) {
            self.forward_next(now, ctx_id);
        } else {
            self.finish_best(now, ctx_id);
        }
    }

    /// §16.7 step 6/7: sends the best response upstream.
    fn finish_best(&mut self, now: Instant, ctx_id: u64) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.phase == Phase::Done {
            return;
        }
        match ctx.best.take().map(|best| *best) {
            // A response message from downstream.
            Some((status, Some(resp))) => {
                if status == 503 {
                    // §16.7 step 6: a 503 is not passed upstream as is.
                    self.finish_with_local(now, ctx_id, 500, "Server Error Downstream", &[]);
                } else if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
                    ctx.phase = Phase::Done;
                    let server = ctx.server.clone();
                    let call_id = ctx.call_id().to_owned();
                    let attempts = ctx.attempts as usize;
                    self.respond_message(now, &server, status, resp);
                    self.events.push_back(Event::CallFinal {
                        call_id,
                        status,
                        attempts,
                    });
                }
            }
            Some((status, _)) => {
                let (status, reason) = if ctx.cancelled {
                    (487, "Request Terminated")
                } else if status == 408 {
                    (408, "Request Timeout")
                } else {
                    (500, "Server Error Downstream")
                };
                self.finish_with_local(now, ctx_id, status, reason, &[]);
            }
            None if ctx.cancelled => {
                self.finish_with_local(now, ctx_id, 487, "Request Terminated", &[])
            }
            None => self.finish_with_local(now, ctx_id, 480, "Temporarily Unavailable", &[]),
        }
    }

    /// Ends a context with a response generated by this node.
    fn finish_with_local(
        &mut self,
        now: Instant,
        ctx_id: u64,
        status: u16,
        reason: &str,
        headers: &[(HeaderName, &str)],
    ) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.phase == Phase::Done {
            return;
        }
        ctx.phase = Phase::Done;
        self.timers.disarm(ctx.timer_c.take());
        let server = ctx.server.clone();
        let call_id = ctx.call_id().to_owned();
        let attempts = ctx.attempts as usize;
        let is_invite = ctx.method == Method::Invite;
        let original = ctx.original.message();
        let Some(original) = original.filter(|_| self.servers.contains_key(&server)) else {
            return;
        };
        let to_tag = self.local_tag(&original);
        let mut all = headers.to_vec();
        let server_header = self.config.server_header.clone();
        all.push((HeaderName::Server, &server_header));
        let bytes = msg::response_to(&original, status, reason, Some(&to_tag), &all);
        self.respond_bytes(now, &server, status, bytes);
        if is_invite {
            self.events.push_back(Event::CallFinal {
                call_id,
                status,
                attempts,
            });
        }
    }

    /// Once a context has sent its final response upstream (every final
    /// response goes through `respond_message`, which calls this) the
    /// request is not forwarded again nor answered locally, and the server
    /// transaction retransmits from its own copy of the response, which it
    /// keeps up to 32 s (RFC 3261 Timer J, RFC 6026 Timer L): at thousands
    /// of calls per second this is most of the node's memory. So the
    /// context goes as soon as no branch refers to it (the usual case, see
    /// `maybe_drop_context`), and with it the requests it holds. Should a
    /// branch still refer to it, it keeps nothing of them but the Call-ID;
    /// a hidden context keeps them: a 2xx retransmission still needs the
    /// caller side's Vias restored from the request as received.
    fn release_request(&mut self, ctx_id: u64) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.phase != Phase::Done {
            return;
        }
        if ctx.branches == 0 {
            self.maybe_drop_context(ctx_id);
            return;
        }
        // Released already (a 2xx retransmission): the request is only
        // the Call-ID now. A real request starts with its method.
        let released =
            ctx.call_id.start == 0 && ctx.call_id.end as usize == ctx.request.as_bytes().len();
        if ctx.hide || released {
            return;
        }
        let call_id = Bytes::copy_from_slice(ctx.call_id().as_bytes());
        ctx.call_id = 0..call_id.len() as u32;
        ctx.request = Held::Raw(call_id);
        ctx.original = Held::Raw(Bytes::new());
    }

    /// Rejects a request that has no context yet.
    fn reject(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Message,
        flow: &Flow,
        rejection: Rejection,
    ) {
        let headers: Vec<(HeaderName, &str)> = rejection
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str()))
            .chain(std::iter::once((
                HeaderName::Server,
                self.config.server_header.as_str(),
            )))
            .collect();
        let bytes = msg::response_to(
            req,
            rejection.status,
            &rejection.reason,
            Some(&self.local_tag(req)),
            &headers,
        );
        self.respond_bytes(now, key, rejection.status, bytes);
        self.events.push_back(Event::Rejected {
            status: rejection.status,
            reason: rejection.reason,
            method: req
                .method()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            flow: flow.clone(),
        });
    }

    /// Passes a response built as bytes to a server transaction.
    fn respond_bytes(&mut self, now: Instant, key: &ServerKey, status: u16, bytes: Bytes) {
        self.respond_message(now, key, status, Wire::bytes(bytes));
    }

    /// Passes a response to a server transaction.
    fn respond_message(&mut self, now: Instant, key: &ServerKey, status: u16, resp: Wire) {
        let Some(entry) = self.servers.get_mut(key) else {
            return;
        };
        match &mut entry.txn {
            ServerTxn::Invite(t) => t.respond(now, status, resp),
            ServerTxn::NonInvite(t) => t.respond(now, status, resp),
        }
        let ctx = entry.ctx.get();
        self.drive_server(now, key);
        if status >= 200
            && let Some(ctx_id) = ctx
        {
            self.release_request(ctx_id);
        }
    }

    /// A To tag for responses this node generates, stable per request.
    fn local_tag(&self, req: &Message) -> String {
        format!("{:x}", self.local_tag_hash(req))
    }

    /// The number `local_tag` writes in hex.
    fn local_tag_hash(&self, req: &Message) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        req.call_id().hash(&mut h);
        req.from_tag().hash(&mut h);
        req.cseq().seq.hash(&mut h);
        self.config.instance.hash(&mut h);
        h.finish()
    }

    /// Whether `tag` is the one `local_tag` gives for `req`, compared
    /// without formatting (every ACK for a 2xx passes through this).
    fn is_local_tag(&self, req: &Message, tag: &str) -> bool {
        // `{:x}` writes lower-case digits and no leading zeros.
        (tag == "0" || !tag.starts_with('0'))
            && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && u64::from_str_radix(tag, 16).is_ok_and(|n| n == self.local_tag_hash(req))
    }

    // ----- timers -------------------------------------------------------

    fn fire_timer_c(&mut self, now: Instant, ctx_id: u64, armed: TimerKey) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.timer_c != Some(armed) {
            return;
        }
        ctx.timer_c = None;
        if ctx.phase != Phase::Forwarding {
            return;
        }
        let Some(active) = ctx.active.clone() else {
            return;
        };
        let got_provisional = self.clients.get(&active).is_some_and(|e| e.got_provisional);
        if let Some(entry) = self.clients.get_mut(&active) {
            entry.timed_out = true;
        }
        if got_provisional {
            // §16.8: cancel the branch; its 487 then counts as a 408.
            self.cancel_branch(now, &active);
        } else {
            // No response at all: treat as 408 and drop the branch.
            self.detach_client(&active);
            self.on_branch_final(now, ctx_id, 408, None);
        }
    }

    // ----- driving machines ---------------------------------------------

    /// Drains a server transaction's outputs and re-arms its timer.
    fn drive_server(&mut self, now: Instant, key: &ServerKey) {
        let Some(entry) = self.servers.get_mut(key) else {
            return;
        };
        loop {
            let out = match &mut entry.txn {
                ServerTxn::Invite(t) => t.poll_transmit(),
                ServerTxn::NonInvite(t) => t.poll_transmit(),
            };
            let Some(resp) = out else { break };
            self.transmits.push_back(Transmit {
                transport: entry.flow.transport,
                remote: entry.response_to(),
                local: Some(entry.flow.local.get()),
                conn: entry.flow.conn,
                server_name: None,
                bytes: resp.into_bytes(),
                token: None,
            });
        }
        let mut terminated = false;
        let mut acks = Vec::new();
        loop {
            let ev = match &mut entry.txn {
                ServerTxn::Invite(t) => t.poll_event(),
                ServerTxn::NonInvite(t) => t.poll_event(),
            };
            match ev {
                None => break,
                Some(txn::Event::Terminated) => terminated = true,
                // RFC 6026 "Accepted": an ACK for the 2xx that reused the
                // INVITE's branch; it goes on like any 2xx ACK.
                Some(txn::Event::Ack(ack)) => acks.push(ack),
                Some(_) => {}
            }
        }
        let flow = entry.flow.flow();
        for ack in acks.into_iter().filter_map(|a| a.message()) {
            self.handle_stray_ack(now, ack, flow.clone());
        }
        let Some(entry) = self.servers.get_mut(key) else {
            return;
        };
        if terminated {
            let ctx = entry.ctx.get();
            self.remove_server(key);
            if let Some(ctx_id) = ctx {
                self.maybe_drop_context(ctx_id);
            }
            return;
        }
        let deadline = match &entry.txn {
            ServerTxn::Invite(t) => t.poll_timeout(),
            ServerTxn::NonInvite(t) => t.poll_timeout(),
        };
        if entry.armed.and_then(|armed| self.timers.at(armed)) != deadline {
            self.timers.disarm(entry.armed.take());
            entry.armed = deadline.map(|at| self.timers.arm(at, TimerRef::Server(key.clone())));
        }
        let _ = now;
    }

    /// Drains a client transaction's outputs and events.
    fn drive_client(&mut self, now: Instant, key: &ClientKey) {
        let Some(entry) = self.clients.get_mut(key) else {
            return;
        };
        loop {
            let out = match &mut entry.txn {
                ClientTxn::Invite(t) => t.poll_transmit(),
                ClientTxn::NonInvite(t) => t.poll_transmit(),
            };
            let Some(req) = out else { break };
            self.transmits.push_back(Transmit {
                transport: entry.target.transport,
                remote: entry.target.remote.get(),
                local: None,
                conn: None,
                server_name: entry.target.server_name.as_deref().map(str::to_owned),
                bytes: req.into_bytes(),
                token: Some(TransmitToken(key.0.clone())),
            });
        }
        // A machine queues at most a couple of events per input: they are
        // collected on the stack (a Vec only past four).
        let mut events: [Option<txn::Event<Wire>>; 4] = [None, None, None, None];
        let mut spill = Vec::new();
        let mut queued = 0;
        loop {
            let ev = match &mut entry.txn {
                ClientTxn::Invite(t) => t.poll_event(),
                ClientTxn::NonInvite(t) => t.poll_event(),
            };
            match ev {
                None => break,
                Some(ev) => match events.get_mut(queued) {
                    Some(slot) => {
                        *slot = Some(ev);
                        queued += 1;
                    }
                    None => spill.push(ev),
                },
            }
        }
        let deadline = match &entry.txn {
            ClientTxn::Invite(t) => t.poll_timeout(),
            ClientTxn::NonInvite(t) => t.poll_timeout(),
        };
        if entry.armed.and_then(|armed| self.timers.at(armed)) != deadline {
            self.timers.disarm(entry.armed.take());
            entry.armed = deadline.map(|at| self.timers.arm(at, TimerRef::Client(key.clone())));
        }
        let mut terminated = false;
        for ev in events.into_iter().flatten().chain(spill) {
            match ev {
                txn::Event::Response { status, response } => {
                    if let Some(response) = response.message() {
                        self.on_branch_response(now, key, status, response);
                    }
                }
                txn::Event::Timeout(_) => self.on_branch_failure(now, key, 408),
                txn::Event::TransportError => self.on_transport_error(now, key),
                txn::Event::Terminated => terminated = true,
                _ => {}
            }
        }
        if terminated {
            let ctx = self.clients.get(key).and_then(|e| e.ctx.get());
            self.remove_client(key);
            if let Some(ctx_id) = ctx {
                if let Some(c) = self.contexts.get_mut(&ctx_id)
                    && c.active.as_ref() == Some(key)
                    && c.phase == Phase::Forwarding
                {
                    // Terminated without a final response reaching us.
                    c.active = None;
                    self.on_branch_final(now, ctx_id, 408, None);
                }
                self.maybe_drop_context(ctx_id);
            }
        }
    }

    /// The branch's request could not be delivered: retried over UDP when
    /// §18.1.1 allows, else the branch fails as a 503 without a message.
    fn on_transport_error(&mut self, now: Instant, key: &ClientKey) {
        if !self.retry_over_udp(now, key) {
            self.on_branch_failure(now, key, 503);
        }
    }

    fn on_branch_failure(&mut self, now: Instant, key: &ClientKey, status: u16) {
        let Some(ctx_id) = self.detach_client(key) else {
            return;
        };
        self.on_branch_final(now, ctx_id, status, None);
        self.maybe_drop_context(ctx_id);
    }

    /// Unlinks a client transaction from its context (it lives on only to
    /// absorb retransmissions); returns the context.
    fn detach_client(&mut self, key: &ClientKey) -> Option<u64> {
        let ctx_id = self.clients.get_mut(key)?.ctx.take()?;
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.branches = ctx.branches.saturating_sub(1);
        }
        Some(ctx_id)
    }

    fn remove_server(&mut self, key: &ServerKey) {
        if let Some(entry) = self.servers.remove(key) {
            self.timers.disarm(entry.armed);
        }
    }

    fn remove_client(&mut self, key: &ClientKey) {
        if let Some(entry) = self.clients.remove(key) {
            self.timers.disarm(entry.armed);
            if let Some(ctx) = entry.ctx.get().and_then(|c| self.contexts.get_mut(&c)) {
                ctx.branches = ctx.branches.saturating_sub(1);
            }
        }
    }

    /// Drops a context once no branch refers to it and it has answered
    /// (or its server transaction is gone). After its final response the
    /// server transaction alone absorbs request retransmissions (§17.2),
    /// a CANCEL finds nothing left to cancel, and the branches that passed
    /// their final responses up have left it; so a context lasts as long as
    /// the request is being routed and forwarded, not for Timers J and L.
    fn maybe_drop_context(&mut self, ctx_id: u64) {
        let Some(ctx) = self.contexts.get(&ctx_id) else {
            return;
        };
        if ctx.branches > 0 || (ctx.phase != Phase::Done && self.servers.contains_key(&ctx.server))
        {
            return;
        }
        let Some(ctx) = self.contexts.remove(&ctx_id) else {
            return;
        };
        self.timers.disarm(ctx.timer_c);
        if let Some(entry) = self.servers.get_mut(&ctx.server)
            && entry.ctx.get() == Some(ctx_id)
        {
            entry.ctx = CtxLink::default();
        }
        self.pending_routes.retain(|_, c| *c != ctx_id);
    }
}

fn reliability(transport: Transport) -> Reliability {
    if transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

/// The request of a context, for hiding bookkeeping.
fn req_for_hiding(contexts: &Sharded<u64, Box<Context>>, ctx_id: u64) -> Option<Message> {
    contexts.get(&ctx_id).and_then(|c| c.request.message())
}

impl Held {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Parsed(m) => m.as_bytes(),
            Self::Raw(b) => b,
        }
    }
}

impl Context {
    fn call_id(&self) -> &str {
        let bytes = self.request.as_bytes();
        bytes
            .get(self.call_id.start as usize..self.call_id.end as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// RFC 3261 §18.2.2 (with RFC 3581 rport): where responses to `req` go.
fn response_address(req: &Message, flow: &Flow) -> SocketAddr {
    match response_port(req, flow) {
        None => flow.remote,
        Some(port) => SocketAddr::new(flow.remote.ip(), port),
    }
}

/// [`response_address`] as a server entry keeps it: `None` for the
/// flow's remote address, else the port that replaces the remote's.
fn response_port(req: &Message, flow: &Flow) -> Option<u16> {
    if flow.transport.is_reliable() || req.top_via_rport() {
        return None;
    }
    Some(req.top_via_sent_by().1.unwrap_or(5060))
}

/// Whether a Request-URI addresses this node itself (no user part).
fn is_node_uri(uri: &Uri, interfaces: &[LocalInterface], domains: &[String]) -> bool {
    matches!(uri, Uri::Sip(sip) if sip.user.is_none())
        && rules::is_local_uri(uri, interfaces, domains)
}

/// Applies §16.4 to a copy of the request: our own Route values removed,
/// the Request-URI restored after a strict router.
/// §16.4 for a request routed along its route set: when all it takes is
/// dropping our own Route values from the top (loose routing, the usual
/// case for every ACK and BYE of a record-routed dialog), the request is
/// kept as received and the forwarding edit drops them, with the count
/// returned: one edit and no re-parse per request instead of two edits and
/// a parse. A strict router's Request-URI is fixed here as before.
fn defer_route_info(req: &Message, info: &RouteInfo) -> (Message, usize) {
    if info.request_uri.is_none() && !info.remove_last_route {
        (req.clone(), info.own_routes)
    } else {
        (apply_route_info(req, info), 0)
    }
}

fn apply_route_info(req: &Message, info: &RouteInfo) -> Message {
    if info.own_routes == 0 && !info.strict_router_fix {
        return req.clone();
    }
    let mut editor = req.edit();
    if let Some(uri) = &info.request_uri {
        editor.set_request_uri(uri);
    }
    let Ok(routes) = req.routes() else {
        return req.clone();
    };
    let mut rest: &[msg::NameAddr] = &routes;
    if info.remove_last_route
        && let Some((_, front)) = rest.split_last()
    {
        rest = front;
    }
    let rest = rest.get(info.own_routes..).unwrap_or(&[]);
    editor.remove_header(&HeaderName::Route);
    for route in rest {
        editor.append_header(HeaderName::Route, &route.to_string());
    }
    Message::parse(editor.finish()).unwrap_or_else(|_| req.clone())
}

fn via_value(out: &LocalInterface, transport: Transport, branch: &str) -> String {
    let mut v = String::with_capacity(32 + out.host.len() + branch.len());
    v.push_str("SIP/2.0/");
    v.push_str(transport.via_token());
    v.push(' ');
    push_host(&mut v, &out.host);
    let _ = write!(v, ":{};branch={branch}", out.port);
    if transport == Transport::Udp {
        v.push_str(";rport");
    }
    v
}

fn record_route_value(iface: &LocalInterface) -> String {
    let mut v = String::with_capacity(32 + iface.host.len());
    v.push_str("<sip:");
    push_host(&mut v, &iface.host);
    let _ = write!(v, ":{}", iface.port);
    if iface.transport != Transport::Udp {
        v.push_str(";transport=");
        v.push_str(iface.transport.param());
    }
    v.push_str(";lr>");
    v
}

/// Appends a host, bracketing a bare IPv6 literal.
fn push_host(out: &mut String, host: &str) {
    if host.contains(':') && !host.starts_with('[') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
}

/// The response with our top Via removed, ready for upstream; `None` when
/// our Via was the only one (it has nowhere to go).
fn strip_top_via(resp: &Message) -> Option<Wire> {
    if resp.header_values(&HeaderName::Via).len() < 2 {
        return None;
    }
    let mut editor = resp.edit();
    editor.remove_first_value(&HeaderName::Via);
    Some(Wire::bytes(editor.finish()))
}

/// RFC 3261 §9.1: the CANCEL for a forwarded INVITE.
fn build_cancel(invite: &Message) -> Option<Message> {
    same_transaction_request(invite, "CANCEL", invite.header(&HeaderName::To)?)
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final response.
fn build_ack(request: &Message, response: &Message) -> Option<Message> {
    same_transaction_request(request, "ACK", response.header(&HeaderName::To)?)
}

/// A request that belongs to `request`'s transaction (its CANCEL, or the
/// ACK of its non-2xx response): same Request-URI, top Via, Route set,
/// From, Call-ID and CSeq number; `to` as given; no body.
fn same_transaction_request(request: &Message, method: &str, to: &str) -> Option<Message> {
    let uri = request.request_uri()?;
    let via = request.header_values(&HeaderName::Via).into_iter().next()?;
    let mut text = format!("{method} {uri} SIP/2.0\r\nVia: {}\r\n", via.trim());
    for route in request.header_values(&HeaderName::Route) {
        text.push_str("Route: ");
        text.push_str(route.trim());
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
        request.header(&HeaderName::From)?.trim(),
        to.trim(),
        request.call_id(),
        request.cseq().seq
    ));
    Message::parse(Bytes::from(text)).ok()
}

impl TxnMessage for Message {
    fn ack_for(request: &Self, response: &Self) -> Self {
        // Both inputs parsed, so the ACK built from their fields parses too;
        // should it not, re-sending the response is harmless (a peer drops a
        // stray response) where re-sending the request would not be.
        build_ack(request, response).unwrap_or_else(|| response.clone())
    }
}

#[cfg(test)]
mod timer_queue_tests {
    use super::*;

    #[test]
    fn peek_due_lists_the_due_transaction_timers_in_order_and_keeps_them() {
        #[expect(clippy::disallowed_methods, reason = "a base instant for the test")]
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let text = |s: &str| -> Arc<str> { Arc::from(s) };
        q.arm(
            t0 + Duration::from_secs(2),
            TimerRef::Server(ServerKey(text("s2"))),
        );
        q.arm(
            t0 + Duration::from_secs(1),
            TimerRef::Client(ClientKey(text("c1"))),
        );
        q.arm(t0 + Duration::from_secs(1), TimerRef::TimerC(9));
        q.arm(
            t0 + Duration::from_secs(3),
            TimerRef::Client(ClientKey(text("c3"))),
        );
        let peek = |q: &TimerQueue, at: u64, max: usize| -> Vec<(bool, String)> {
            q.peek_due(t0 + Duration::from_secs(at), max)
                .map(|(client, t)| (client, t.to_string()))
                .collect()
        };
        assert!(peek(&q, 0, 16).is_empty(), "nothing due yet");
        assert_eq!(
            peek(&q, 2, 16),
            vec![(true, "c1".to_owned()), (false, "s2".to_owned())],
            "Timer C entries are not transaction timers"
        );
        assert_eq!(peek(&q, 5, 1), vec![(true, "c1".to_owned())]);
        assert_eq!(q.len(), 4, "peeking removes nothing");
        assert!(TimerQueue::default().peek_due(t0, 16).next().is_none());
    }
}
