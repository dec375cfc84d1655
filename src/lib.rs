//! tcpcan: tunnel a Linux SocketCAN interface over TCP.
//!
//! Wire-compatible with the Python `tcpcan` 0.0.2 (protocol version 1, see
//! `docs/protocol.md`). One thread runs one poll(2) loop over non-blocking
//! descriptors; every buffer is fixed at start-up ([`limits`]), so memory
//! does not grow with traffic and a slow peer is back-pressured, never
//! buffered without bound.
//!
//! Layout: a pure protocol core ([`wire`], [`negotiation`], [`session`])
//! that tests drive byte by byte; I/O at the edges ([`can`], [`net`],
//! [`event_loop`]); all `unsafe` in [`sys`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod busstate;
pub mod can;
pub mod cli;
pub mod counters;
pub mod error;
pub mod event_loop;
pub mod filter;
pub mod limits;
pub mod negotiation;
pub mod net;
pub mod pace;
pub mod session;
pub mod sys;
pub mod wire;

pub use error::Error;
pub use event_loop::run;

/// The crate version, for `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The target triple this binary was built for, for `--version`.
pub const TARGET: &str = env!("TCPCAN_TARGET");
