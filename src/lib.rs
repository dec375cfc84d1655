//! What is tcpcan, and where is each part? It tunnels a Linux SocketCAN
//! interface over TCP.
//!
//! Wire-compatible with the Python `tcpcan` 0.0.2 (protocol version 1, see
//! `docs/protocol.md`). One thread runs one poll(2) loop over non-blocking
//! descriptors; every buffer is fixed at start-up ([`limits`]), so memory
//! does not grow with traffic and a slow peer is back-pressured, never
//! buffered without bound. The one exception is bounded too: a replay into
//! a virtual interface takes a reservoir while it runs ([`buf::Reservoir`]).
//!
//! Layout, in floors; a module imports only from its own floor or below
//! (README, Development, gives the same map with each file's job):
//!
//! 1. Bottom, the vocabulary: [`sys`] (all `unsafe`), [`limits`], [`time`],
//!    [`wire`], [`negotiation`], [`device`], [`buf`], [`counters`],
//!    [`close`], [`filter`], [`busstate`], [`coalesce`], [`pace`], [`peer`],
//!    [`notices`], [`framelog`].
//! 2. The protocols, pure: [`protocol`] (what a session tells its
//!    connection), [`session`] (protocol v1) and [`socketcand`], which
//!    tests drive byte by byte.
//! 3. The I/O edges: [`can`], [`net`] and [`link`] (what carries a
//!    connection: TCP, or pipes).
//! 4. Top: the [`daemon`] loop, configured by [`cli`] and failing with
//!    [`error`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod busstate;
pub mod can;
pub mod cli;
pub mod close;
pub mod coalesce;
pub mod counters;
pub mod daemon;
pub mod device;
pub mod error;
pub mod filter;
pub mod framelog;
pub mod limits;
pub mod link;
pub mod negotiation;
pub mod net;
pub mod notices;
pub mod pace;
pub mod peer;
pub mod protocol;
pub mod session;
pub mod socketcand;
pub mod sys;
pub mod time;
pub mod wire;

pub use daemon::run;
pub use error::Error;

/// The crate version, for `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The target triple this binary was built for, for `--version`.
pub const TARGET: &str = env!("TCPCAN_TARGET");
