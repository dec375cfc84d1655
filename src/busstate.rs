//! Bus state from CAN error frames: error-warning, error-passive, bus-off
//! and restart, so a gateway's log says why traffic stopped. Pure.

use core::fmt;

use crate::wire::{wire_can_id, CAN_ERR_FLAG, CAN_MTU};

/// Controller problems (`CAN_ERR_CRTL`), detail in data[1].
pub const CAN_ERR_CRTL: u32 = 0x0000_0004;
/// Bus off (`CAN_ERR_BUSOFF`).
pub const CAN_ERR_BUSOFF: u32 = 0x0000_0040;
/// Controller restarted (`CAN_ERR_RESTARTED`).
pub const CAN_ERR_RESTARTED: u32 = 0x0000_0100;
/// The error classes a bus-state monitor subscribes to.
pub const STATE_ERRORS: u32 = CAN_ERR_CRTL | CAN_ERR_BUSOFF | CAN_ERR_RESTARTED;

const CRTL_RX_WARNING: u8 = 0x04;
const CRTL_TX_WARNING: u8 = 0x08;
const CRTL_RX_PASSIVE: u8 = 0x10;
const CRTL_TX_PASSIVE: u8 = 0x20;
const CRTL_ACTIVE: u8 = 0x40;

/// The state of a CAN controller, from its error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusState {
    /// Normal operation.
    ErrorActive,
    /// An error counter passed 96.
    ErrorWarning,
    /// An error counter passed 127: the node may no longer signal errors.
    ErrorPassive,
    /// The transmit error counter passed 255: the node left the bus.
    BusOff,
    /// The controller was restarted after bus-off.
    Restarted,
}

impl fmt::Display for BusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusState::ErrorActive => "error-active",
            BusState::ErrorWarning => "error-warning",
            BusState::ErrorPassive => "error-passive",
            BusState::BusOff => "bus-off",
            BusState::Restarted => "restarted",
        })
    }
}

/// The bus state an error frame (wire layout) announces, if any. The most
/// severe condition wins when one frame reports several.
pub fn state_from_error_frame(frame: &[u8]) -> Option<BusState> {
    if frame.len() != CAN_MTU {
        return None;
    }
    let id = wire_can_id(frame);
    if id & CAN_ERR_FLAG == 0 {
        return None;
    }
    if id & CAN_ERR_BUSOFF != 0 {
        return Some(BusState::BusOff);
    }
    if id & CAN_ERR_RESTARTED != 0 {
        return Some(BusState::Restarted);
    }
    if id & CAN_ERR_CRTL != 0 {
        let d1 = frame[8 + 1];
        if d1 & (CRTL_RX_PASSIVE | CRTL_TX_PASSIVE) != 0 {
            return Some(BusState::ErrorPassive);
        }
        if d1 & (CRTL_RX_WARNING | CRTL_TX_WARNING) != 0 {
            return Some(BusState::ErrorWarning);
        }
        if d1 & CRTL_ACTIVE != 0 {
            return Some(BusState::ErrorActive);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_frame(class: u32, d1: u8) -> [u8; CAN_MTU] {
        let mut f = [0u8; CAN_MTU];
        f[0..4].copy_from_slice(&(CAN_ERR_FLAG | class).to_le_bytes());
        f[4] = 8;
        f[9] = d1;
        f
    }

    #[test]
    fn states() {
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_BUSOFF, 0)),
            Some(BusState::BusOff)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_RESTARTED, 0)),
            Some(BusState::Restarted)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_CRTL, 0x10)),
            Some(BusState::ErrorPassive)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_CRTL, 0x08)),
            Some(BusState::ErrorWarning)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_CRTL, 0x40)),
            Some(BusState::ErrorActive)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(CAN_ERR_CRTL | CAN_ERR_BUSOFF, 0x10)),
            Some(BusState::BusOff)
        );
        assert_eq!(
            state_from_error_frame(&err_frame(0x2, 0)),
            None,
            "lost arbitration says nothing of state"
        );
    }

    #[test]
    fn data_frames_are_not_state() {
        let mut f = err_frame(CAN_ERR_BUSOFF, 0);
        f[3] = 0; // clear CAN_ERR_FLAG
        assert_eq!(state_from_error_frame(&f), None);
    }
}
