//! Which protocol version do two peers speak? Version negotiation as a pure
//! state machine.
//!
//! The client proposes its highest version; the server never speaks first.
//! A party that receives a version it supports and did not propose itself
//! answers with the same number (agreement). One that receives a higher
//! version proposes its own highest (downgrade). Version 0 ends the
//! connection. Nobody answers a `v` carrying the number it proposed.
//!
//! Version 2 is tcpcan's own; a peer pinned with `--protocol 1` (and the
//! Python original, which knows only 1) negotiates as if 1 were its highest.

use core::fmt;

/// Highest protocol version this implementation speaks.
pub const MAX_VERSION: u32 = 2;
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
    /// The peer kept proposing above our highest (`ours`) after we
    /// downgraded.
    NoCommonVersion {
        /// What the peer insists on.
        got: u32,
        /// Our highest, already offered.
        ours: u32,
    },
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
            NegotiationError::NoCommonVersion { got, ours } => {
                write!(
                    f,
                    "peer insists on version {got} after we offered {ours}: no common version"
                )
            }
            NegotiationError::Changed { agreed, got } => {
                write!(f, "peer sent version {got} after agreeing on {agreed}")
            }
        }
    }
}

/// The negotiation state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiation {
    /// The highest version this side speaks on this connection:
    /// [`MAX_VERSION`], or lower when pinned.
    highest: u32,
    proposed: Option<u32>,
    agreed: Option<u32>,
}

impl Default for Negotiation {
    fn default() -> Self {
        Negotiation::new(MAX_VERSION)
    }
}

impl Negotiation {
    /// A fresh negotiation speaking at most `highest` (clamped to the
    /// versions we speak); a server waits in this state for the client.
    pub fn new(highest: u32) -> Self {
        Negotiation {
            highest: highest.clamp(MIN_VERSION, MAX_VERSION),
            proposed: None,
            agreed: None,
        }
    }

    /// The client's opening move: returns the version to send.
    pub fn propose(&mut self) -> u32 {
        self.proposed = Some(self.highest);
        self.highest
    }

    /// The version proposed by this side, if it proposed one.
    pub fn proposed(&self) -> Option<u32> {
        self.proposed
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
        let ours = self.highest;
        if (MIN_VERSION..=ours).contains(&v) {
            self.agreed = Some(v);
            return Ok(Step::AgreedReply(v));
        }
        if v > ours {
            // Offering our highest a second time would ping-pong forever.
            if self.proposed == Some(ours) {
                return Err(NegotiationError::NoCommonVersion { got: v, ours });
            }
            self.proposed = Some(ours);
            return Ok(Step::Propose(ours));
        }
        Err(NegotiationError::TooOld(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_acknowledges_the_clients_proposal() {
        let mut n = Negotiation::new(1);
        assert_eq!(n.on_version(1), Ok(Step::AgreedReply(1)));
        assert_eq!(n.agreed(), Some(1));
    }

    #[test]
    fn client_agrees_on_the_acknowledgement_without_answering() {
        let mut n = Negotiation::new(1);
        assert_eq!(n.propose(), 1);
        assert_eq!(n.agreed(), None);
        assert_eq!(n.on_version(1), Ok(Step::Agreed(1)));
        assert_eq!(n.agreed(), Some(1));
    }

    #[test]
    fn higher_versions_are_downgraded_to_ours() {
        for v in [2, 3, 0xFFFF_FFFF] {
            let mut n = Negotiation::new(1);
            assert_eq!(n.on_version(v), Ok(Step::Propose(1)));
            assert_eq!(n.agreed(), None);
            // The peer accepts our downgrade by echoing it: we must not answer.
            assert_eq!(n.on_version(1), Ok(Step::Agreed(1)));
        }
    }

    #[test]
    fn a_peer_that_will_not_come_down_is_refused() {
        let mut n = Negotiation::new(1);
        assert_eq!(n.on_version(2), Ok(Step::Propose(1)));
        assert_eq!(
            n.on_version(2),
            Err(NegotiationError::NoCommonVersion { got: 2, ours: 1 })
        );
        let mut c = Negotiation::new(1);
        c.propose();
        assert_eq!(
            c.on_version(7),
            Err(NegotiationError::NoCommonVersion { got: 7, ours: 1 })
        );
    }

    #[test]
    fn version_zero_ends_it() {
        let mut n = Negotiation::new(1);
        assert_eq!(n.on_version(0), Err(NegotiationError::Zero));
        let mut c = Negotiation::new(1);
        c.propose();
        assert_eq!(c.on_version(0), Err(NegotiationError::Zero));
    }

    #[test]
    fn after_agreement_only_the_same_version_is_tolerated() {
        let mut n = Negotiation::new(1);
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
        let (mut client, mut server) = (Negotiation::new(1), Negotiation::new(1));
        let offer = client.propose();
        let Ok(Step::AgreedReply(ack)) = server.on_version(offer) else {
            panic!("server did not acknowledge");
        };
        assert_eq!(client.on_version(ack), Ok(Step::Agreed(1)));
        assert_eq!((client.agreed(), server.agreed()), (Some(1), Some(1)));
    }

    #[test]
    fn two_of_ours_agree_on_2_and_a_pinned_one_on_1() {
        let (mut client, mut server) = (Negotiation::default(), Negotiation::default());
        assert_eq!(client.propose(), 2);
        assert_eq!(server.on_version(2), Ok(Step::AgreedReply(2)));
        assert_eq!(client.on_version(2), Ok(Step::Agreed(2)));
        // --protocol 1 on the server: it steps our 2 down to 1.
        let (mut client, mut server) = (Negotiation::default(), Negotiation::new(1));
        let offer = client.propose();
        assert_eq!(server.on_version(offer), Ok(Step::Propose(1)));
        assert_eq!(client.on_version(1), Ok(Step::AgreedReply(1)));
        assert_eq!(server.on_version(1), Ok(Step::Agreed(1)));
        // --protocol 1 on the client: it proposes 1, which we agree on.
        let (mut client, mut server) = (Negotiation::new(1), Negotiation::default());
        assert_eq!(client.propose(), 1);
        assert_eq!(server.on_version(1), Ok(Step::AgreedReply(1)));
    }

    #[test]
    fn a_python_client_still_gets_1_from_a_server_that_speaks_2() {
        let mut server = Negotiation::default();
        assert_eq!(server.on_version(1), Ok(Step::AgreedReply(1)));
        assert_eq!(server.agreed(), Some(1));
    }

    #[test]
    fn above_2_is_stepped_down_to_2_and_pins_are_clamped() {
        let mut server = Negotiation::default();
        assert_eq!(server.on_version(3), Ok(Step::Propose(2)));
        assert_eq!(Negotiation::new(0).propose(), 1);
        assert_eq!(Negotiation::new(9).propose(), 2);
    }
}
