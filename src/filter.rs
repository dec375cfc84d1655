//! What do `--filter` and `--error-mask` ask the kernel for? Their candump
//! syntax, parsed into `CAN_RAW_FILTER` entries and a `CAN_RAW_ERR_FILTER`
//! mask, and which IDs the entries let through ([`Filters`]). Pure: no
//! sockets here.

use core::fmt;

/// All error classes (`CAN_ERR_MASK`), the mask `--error-frames` alone means.
pub use libc::CAN_ERR_MASK;
use libc::CAN_INV_FILTER;

use crate::limits::MAX_FILTERS;
use crate::wire::{CAN_EFF_FLAG, CAN_ERR_FLAG};

/// Which data frames a socket receives.
// Built once from the command line and never moved in a hot path, so the
// inline filter table is cheaper than a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filters {
    /// Every frame (the kernel default).
    All,
    /// Only frames matching one of these `CAN_RAW_FILTER` entries.
    List(heapless::Vec<libc::can_filter, MAX_FILTERS>),
    /// No data frames at all (a socket that only wants error frames).
    Nothing,
}

impl Filters {
    /// True if a data frame with `can_id` (flags included) passes, as the
    /// kernel applies `CAN_RAW_FILTER`: any entry whose masked ID matches
    /// (or, inverted, differs). A socketcand `subscribe` asks the BCM, which
    /// knows nothing of these filters, so it is checked here first.
    pub fn admits(&self, can_id: u32) -> bool {
        match self {
            Filters::All => true,
            Filters::Nothing => false,
            Filters::List(list) => list.iter().any(|f| {
                let same = can_id & f.can_mask == f.can_id & f.can_mask & !libc::CAN_INV_FILTER;
                same != (f.can_id & libc::CAN_INV_FILTER != 0)
            }),
        }
    }
}

/// A filter argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad filter '{}': expected <can_id>:<can_mask> or <can_id>~<can_mask> in hex, e.g. 123:7FF",
            self.0
        )
    }
}

fn hex(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Parses one filter exactly as candump does: `id:mask` matches when
/// `received & mask == id & mask`; `id~mask` inverts it; an id written with
/// eight hex digits is an extended (29-bit) id.
pub fn parse_filter(arg: &str) -> Result<libc::can_filter, FilterError> {
    let err = || FilterError(arg.to_string());
    let (id, mask, inverted) = if let Some((id, mask)) = arg.split_once(':') {
        (id, mask, false)
    } else if let Some((id, mask)) = arg.split_once('~') {
        (id, mask, true)
    } else {
        return Err(err());
    };
    let mut can_id = hex(id).ok_or_else(err)?;
    // Error frames are selected with --error-frames, never by a data filter.
    let can_mask = hex(mask).ok_or_else(err)? & !CAN_ERR_FLAG;
    if id.len() == 8 {
        can_id |= CAN_EFF_FLAG;
    }
    if inverted {
        can_id |= CAN_INV_FILTER;
    }
    Ok(libc::can_filter { can_id, can_mask })
}

/// Parses an error class mask (hex, as `CAN_ERR_*` bits).
pub fn parse_error_mask(arg: &str) -> Result<u32, String> {
    let v = hex(arg.trim_start_matches("0x"))
        .ok_or_else(|| format!("bad error mask '{arg}': expected hex, e.g. 1FFFFFFF"))?;
    Ok(v & CAN_ERR_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(arg: &str) -> (u32, u32) {
        let f = parse_filter(arg).unwrap();
        (f.can_id, f.can_mask)
    }

    #[test]
    fn standard_and_extended_ids() {
        assert_eq!(f("123:7FF"), (0x123, 0x7FF));
        assert_eq!(
            f("18FEF100:1FFFFFFF"),
            (0x18FE_F100 | CAN_EFF_FLAG, 0x1FFF_FFFF)
        );
        assert_eq!(f("00000123:1FFFFFFF"), (0x123 | CAN_EFF_FLAG, 0x1FFF_FFFF));
        assert_eq!(f("00000123:1FFFFFFF"), (0x8000_0123, 0x1FFF_FFFF));
    }

    #[test]
    fn inverted_and_error_flag_stripped_from_mask() {
        assert_eq!(f("123~7FF"), (0x123 | CAN_INV_FILTER, 0x7FF));
        // The kernel's value, not only libc's name for it.
        assert_eq!(f("123~7FF"), (0x2000_0123, 0x7FF));
        assert_eq!(f("0:FFFFFFFF"), (0, !CAN_ERR_FLAG));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "123", "xyz:7FF", "123:", ":7FF", "123456789:1", "1:2:3"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_masks() {
        assert_eq!(parse_error_mask("1FFFFFFF"), Ok(CAN_ERR_MASK));
        assert_eq!(parse_error_mask("0x40"), Ok(0x40));
        assert!(parse_error_mask("zz").is_err());
    }
}
