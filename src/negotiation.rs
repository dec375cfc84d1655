//! Which protocol version do two peers speak? Version negotiation as a pure
//! state machine.
//!
//! The client proposes its highest version; the server never speaks first.
//! A party that receives a version it supports and did not propose itself
//! answers with the same number (agreement). One that receives a higher
//! version proposes its own highest (downgrade). Version 0 ends the
//! connection. Nobody answers a `v` carrying the number it proposed.

use core::fmt;

/// Highest protocol version this implementation speaks.
pub const MAX_VERSION: u32 = 1;
/// Lowest protocol version this implementation speaks.
pub const MIN_VERSION: u32 = 1;

/// What to do after a `v` message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send `v(n)` and keep negotiating (a downgrade proposal).
    Propose(u32),
    /// The peer accepted our proposal: agreed, nothing to send.
    Agreed(u32),
    /// Agreed on the peer's proposal: acknowledge with `v(n)`.
    AgreedReply(u32),
    /// A repeat of the agreed version after agreement: harmless, ignored.
    Repeat,
}

/// Why negotiation ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiationError {
    /// The peer sent version 0: no agreement is possible.
    Zero,
    /// The peer offered a version below the lowest we speak.
    TooOld(u32),
    /// The peer kept proposing above our highest after we downgraded.
    NoCommonVersion(u32),
    /// A `v` with a different number after agreement.
    Changed {
        /// The version both sides agreed on.
        agreed: u32,
        /// The version the peer sent afterwards.
        got: u32,
    },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NegotiationError::Zero => {
                f.write_str("peer sent version 0: no common protocol version")
            }
            NegotiationError::TooOld(v) => write!(
                f,
                "peer offered version {v}, below our lowest ({MIN_VERSION})"
            ),
            NegotiationError::NoCommonVersion(v) => {
                write!(
                    f,
                    "peer insists on version {v} after we offered {MAX_VERSION}: no common version"
                )
            }
            NegotiationError::Changed { agreed, got } => {
                write!(f, "peer sent version {got} after agreeing on {agreed}")
            }
        }
    }
}

/// The negotiation state of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiation {
    proposed: Option<u32>,
    agreed: Option<u32>,
}

impl Negotiation {
    /// A fresh negotiation (a server waits in this state for the client).
    pub fn new() -> Self {
        Self::default()
    }

    /// The client's opening move: returns the version to send.
    pub fn propose(&mut self) -> u32 {
        self.proposed = Some(MAX_VERSION);
        MAX_VERSION
    }

    /// The agreed version, once there is one.
    pub fn agreed(&self) -> Option<u32> {
        self.agreed
    }

    /// Handles a `v` message from the peer.
    pub fn on_version(&mut self, v: u32) -> Result<Step, NegotiationError> {
        if let Some(agreed) = self.agreed {
            return if v == agreed {
                Ok(Step::Repeat)
            } else {
                Err(NegotiationError::Changed { agreed, got: v })
            };
        }
        if v == 0 {
            return Err(NegotiationError::Zero);
        }
        if self.proposed == Some(v) {
            self.agreed = Some(v);
            return Ok(Step::Agreed(v));
        }
        if (MIN_VERSION..=MAX_VERSION).contains(&v) {
            self.agreed = Some(v);
            return Ok(Step::AgreedReply(v));
        }
        if v > MAX_VERSION {
            // Offering our highest a second time would ping-pong forever.
            if self.proposed == Some(MAX_VERSION) {
                return Err(NegotiationError::NoCommonVersion(v));
            }
            self.proposed = Some(MAX_VERSION);
            return Ok(Step::Propose(MAX_VERSION));
        }
        Err(NegotiationError::TooOld(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_acknowledges_the_clients_proposal() {
        let mut n = Negotiation::new();
        assert_eq!(n.on_version(1), Ok(Step::AgreedReply(1)));
        assert_eq!(n.agreed(), Some(1));
    }

    #[test]
    fn client_agrees_on_the_acknowledgement_without_answering() {
        let mut n = Negotiation::new();
        assert_eq!(n.propose(), 1);
        assert_eq!(n.agreed(), None);
        assert_eq!(n.on_version(1), Ok(Step::Agreed(1)));
        assert_eq!(n.agreed(), Some(1));
    }

    #[test]
    fn higher_versions_are_downgraded_to_ours() {
        for v in [2, 3, 0xFFFF_FFFF] {
            let mut n = Negotiation::new();
            assert_eq!(n.on_version(v), Ok(Step::Propose(1)));
            assert_eq!(n.agreed(), None);
            // The peer accepts our downgrade by echoing it: we must not answer.
            assert_eq!(n.on_version(1), Ok(Step::Agreed(1)));
        }
    }

    #[test]
    fn a_peer_that_will_not_come_down_is_refused() {
        let mut n = Negotiation::new();
        assert_eq!(n.on_version(2), Ok(Step::Propose(1)));
        assert_eq!(n.on_version(2), Err(NegotiationError::NoCommonVersion(2)));
        let mut c = Negotiation::new();
        c.propose();
        assert_eq!(c.on_version(7), Err(NegotiationError::NoCommonVersion(7)));
    }

    #[test]
    fn version_zero_ends_it() {
        let mut n = Negotiation::new();
        assert_eq!(n.on_version(0), Err(NegotiationError::Zero));
        let mut c = Negotiation::new();
        c.propose();
        assert_eq!(c.on_version(0), Err(NegotiationError::Zero));
    }

    #[test]
    fn after_agreement_only_the_same_version_is_tolerated() {
        let mut n = Negotiation::new();
        n.on_version(1).unwrap();
        assert_eq!(n.on_version(1), Ok(Step::Repeat));
        assert_eq!(
            n.on_version(2),
            Err(NegotiationError::Changed { agreed: 1, got: 2 })
        );
        assert_eq!(
            n.on_version(0),
            Err(NegotiationError::Changed { agreed: 1, got: 0 })
        );
    }

    #[test]
    fn two_of_ours_agree_in_one_round_trip() {
        let (mut client, mut server) = (Negotiation::new(), Negotiation::new());
        let offer = client.propose();
        let Ok(Step::AgreedReply(ack)) = server.on_version(offer) else {
            panic!("server did not acknowledge");
        };
        assert_eq!(client.on_version(ack), Ok(Step::Agreed(1)));
        assert_eq!((client.agreed(), server.agreed()), (Some(1), Some(1)));
    }
}
