//! Which bus state does a CAN error frame announce? Error-warning,
//! error-passive, bus-off and restart, so a gateway's log says why traffic
//! stopped. Pure.

use core::fmt;

use libc::{
    CAN_ERR_BUSOFF, CAN_ERR_CRTL, CAN_ERR_CRTL_ACTIVE, CAN_ERR_CRTL_RX_PASSIVE,
    CAN_ERR_CRTL_RX_WARNING, CAN_ERR_CRTL_TX_PASSIVE, CAN_ERR_CRTL_TX_WARNING, CAN_ERR_RESTARTED,
};

use crate::wire::{Frame, CAN_ERR_FLAG};

/// The error classes a bus-state monitor subscribes to.
pub const STATE_ERRORS: u32 = CAN_ERR_CRTL | CAN_ERR_BUSOFF | CAN_ERR_RESTARTED;

/// `data[1]` of a `CAN_ERR_CRTL` error frame: which controller problem
/// (`linux/can/error.h`).
const CRTL_DETAIL: usize = 1;

// The `CAN_ERR_CRTL_*` bits of that byte; libc types them as c_int.
const PASSIVE: u8 = (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE) as u8;
const WARNING: u8 = (CAN_ERR_CRTL_RX_WARNING | CAN_ERR_CRTL_TX_WARNING) as u8;
const ACTIVE: u8 = CAN_ERR_CRTL_ACTIVE as u8;

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
    // The kernel sends error frames as classic frames only.
    let frame = Frame::new_checked(frame).ok().filter(|f| !f.is_fd())?;
    let id = frame.can_id();
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
        // The whole data field: error frames always say len 8 (CAN_ERR_DLC).
        let detail = frame.data_field()[CRTL_DETAIL];
        if detail & PASSIVE != 0 {
            return Some(BusState::ErrorPassive);
        }
        if detail & WARNING != 0 {
            return Some(BusState::ErrorWarning);
        }
        if detail & ACTIVE != 0 {
            return Some(BusState::ErrorActive);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::{CANFD_MTU, CAN_MTU};

    fn err_frame(class: u32, detail: u8) -> [u8; CAN_MTU] {
        let mut f = Frame::new_unchecked([0u8; CAN_MTU]);
        f.set_can_id(CAN_ERR_FLAG | class);
        f.set_len(libc::CAN_ERR_DLC as u8);
        f.data_field_mut()[CRTL_DETAIL] = detail;
        f.into_inner()
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
        let mut f = Frame::new_unchecked(err_frame(CAN_ERR_BUSOFF, 0));
        f.set_can_id(CAN_ERR_BUSOFF);
        assert_eq!(state_from_error_frame(&f.into_inner()), None);
    }

    #[test]
    fn only_classic_frames_carry_state() {
        let mut fd = [0u8; CANFD_MTU];
        fd[..CAN_MTU].copy_from_slice(&err_frame(CAN_ERR_BUSOFF, 0));
        assert_eq!(state_from_error_frame(&fd), None);
        assert_eq!(state_from_error_frame(&fd[..CAN_MTU - 1]), None);
    }
}
