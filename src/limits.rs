//! How much of anything may the daemon hold, and how often does it retry?
//! Every fixed capacity and fixed interval of the daemon, in one place.
//!
//! Nothing grows after start-up: a connection that would need more than these
//! is refused or back-pressured, never given more memory.

use std::time::Duration;

/// Compiled-in connection capacity of a server (`--max-clients` can only lower it).
pub const MAX_CLIENTS: usize = 64;

/// Bytes of TCP input buffered per connection, on their way to the bus.
/// Holds ~110 CAN FD or ~450 classic messages: one large read per wake-up.
pub const RX_BUF: usize = 8192;

/// Bytes of encoded messages buffered per connection, on their way to TCP.
/// When it cannot take another message the CAN socket is not read, so the
/// kernel's receive queue (and its overflow counter) absorbs the excess.
pub const TX_BUF: usize = 8192;

/// Bytes of `--log` lines a connection holds for the copier process: ~1,000
/// classic frames' lines, a second of a busy bus while the disk stalls;
/// beyond it lines are dropped and counted, so the log never holds up the
/// tunnel. Allocated only with `--log`.
pub const LOG_BUF: usize = 64 * 1024;

/// Bytes the socket between the loop and the `--log` copier process
/// buffers (asked for; the kernel may give less): another burst's worth.
pub const LOG_SOCKET_BUF: usize = 1024 * 1024;

/// CAN frames read per `recvmmsg` call.
pub const CAN_BATCH: usize = 32;

/// TCP reads per connection per wake-up: bounds the work between two looks
/// at the signal pipe, so SIGTERM is honoured quickly even under full load.
pub const READS_PER_WAKEUP: usize = 4;

/// Delay between connection attempts of a client, and between attempts to
/// reopen a CAN interface that has disappeared.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// How long a `--via` command that is being ended (SIGTERM to its process
/// group) may take before it is killed: ssh exits at once; the bound is for
/// a command that ignores the signal, so stopping never hangs.
pub const VIA_END_GRACE: Duration = Duration::from_secs(1);

/// Longest line of a `--via` command's stderr logged whole; the rest of a
/// longer line is logged as a line of its own. ssh's messages fit in one.
pub const VIA_LINE: usize = 240;

/// Lines of one `--via` attempt's stderr remembered, so the next attempt
/// that says the same is not logged again: a refused key or a missing
/// command says it in one or two lines.
pub const VIA_LINES_REMEMBERED: usize = 8;

/// Minimum spacing of repeated warnings of one kind on one connection.
pub const WARN_INTERVAL: Duration = Duration::from_secs(5);

/// Back-off before retrying a frame the bus refused with ENOBUFS when the
/// socket nevertheless polls writable (the queue that is full is not ours).
pub const ENOBUFS_RETRY: Duration = Duration::from_millis(2);

/// Send buffer of each CAN socket (the kernel doubles it; a frame costs
/// ~800 bytes of it). Small enough that POLLOUT means "some of our frames
/// left the queue", which is what a parked writer waits for; large enough
/// (~40 frames) that a wake-up a few milliseconds late does not idle a fast bus.
pub const CAN_SNDBUF: usize = 16 * 1024;

/// Receive queue of each CAN socket: the kernel doubles it and a queued
/// frame costs ~770 bytes, so ~1,300 frames instead of the default ~280; a
/// burst or a stalled loop then does not make the kernel drop frames. Only
/// used while frames wait.
pub const CAN_RCVBUF: usize = 512 * 1024;

/// What one queued frame costs in a CAN socket's receive queue (its skb's
/// truesize on 64-bit kernels, classic or FD alike), to say in the log how
/// many frames the queue the kernel granted holds.
pub const CAN_QUEUED_FRAME_COST: usize = 770;

/// Send buffer of each TCP stream (the kernel doubles it). Caps what a peer
/// that stops reading costs in kernel memory, and keeps the frames it gets
/// when it resumes fresh; still several times the bandwidth-delay product
/// of a saturated CAN FD bus over a 300 ms cellular link.
pub const TCP_SNDBUF: usize = 128 * 1024;

/// The send buffer of a protocol version 2 stream: as many classic frames
/// as [`TCP_SNDBUF`] holds in version 1 (26-byte `t` messages, not 18-byte
/// `d`), so a stalled peer is bridged for as long. Measured: with
/// [`TCP_SNDBUF`] a desk stalled 3 s at 5,000 frames/s lost 667 of 15,000
/// frames at the gateway in version 2, none in version 1.
pub const TCP_SNDBUF_V2: usize = TCP_SNDBUF / 18 * 26;

/// Pending-connection queue of the listening socket.
pub const LISTEN_BACKLOG: i32 = 64;

/// `--allow` entries and `--filter` entries accepted on the command line.
pub const MAX_ALLOW: usize = 16;
/// See [`MAX_ALLOW`]; the kernel itself accepts up to 512 filters per socket.
pub const MAX_FILTERS: usize = 32;

/// Addresses a host name may resolve to that a client tries in turn.
pub const MAX_ADDRS: usize = 8;

/// Longest socketcand command, `<` to `>` included. socketcand itself reads
/// up to 4000 bytes only for ISO-TP PDUs, which are not served here; the
/// longest command served (`< send 1FFFFFFF 8 ` and eight bytes) is under
/// 50, so this leaves room for generous white space and nothing else.
pub const SCD_MAX_LINE: usize = 256;

/// Bytes of socketcand input buffered per connection: a few dozen `send`
/// lines per read, and always room for one whole line.
pub const SCD_RX_BUF: usize = 4096;

/// Bytes of socketcand output buffered per connection, as [`TX_BUF`]: when
/// another `< frame >` line does not fit, the CAN socket is not read.
pub const SCD_TX_BUF: usize = 8192;

/// Longest reply to a command (`< error … >`); input is not read while the
/// output buffer has less room than this.
pub const SCD_MAX_REPLY: usize = 64;

/// `filter`/`subscribe` IDs one socketcand connection may hold. Each is a
/// receive job in the kernel's BCM (a few hundred bytes of kernel memory
/// and two timers, for as long as the connection lasts), so the bound
/// keeps [`MAX_CLIENTS`] clients from pinning more than a few MiB of a
/// small board's memory; 64 still covers the messages a desk tool
/// typically watches on one bus. socketcand itself sets no bound.
pub const SCD_MAX_SUBSCRIPTIONS: usize = 64;

/// Interval of the socketcand discovery beacon (`--beacon`): the protocol
/// asks for at most 3 s, and python-can listens for 3.1 s by default.
pub const BEACON_INTERVAL: Duration = Duration::from_secs(2);

/// Interfaces a beacon is sent on when listening on 0.0.0.0.
pub const MAX_BEACON_IFACES: usize = 8;

// ----- pacing a backlog into a virtual interface (src/pace.rs) -----

/// Silence before a read that may mark its data as a backlog: a desk
/// that read data this recently was not stalled, and a read that merely
/// falls behind a fast bus is never held back further. Shorter pauses
/// leave fewer frames behind than a reader's default queue holds at any
/// bus rate a desk sees (100 ms of a busy 2,000 frames/s bus is 200).
pub const BACKLOG_SILENCE: Duration = Duration::from_millis(100);

/// How long the newest data of such a read must have waited in the kernel
/// (its receive stamp against the time it is read) to be a backlog: the
/// desk was away while the network kept delivering. The same 100 ms as
/// [`BACKLOG_SILENCE`], for the same reason; data that waited less is
/// live however long the silence before it. Measured in UML on a loaded
/// host under a flat-out flood: data the desk read as it came had waited
/// under 25 ms; up to 100 ms where the desk fell behind the flood while
/// reading all along (no silence); more only after the desk process
/// itself went unscheduled for as long, which is a stall like any other.
pub const BACKLOG_AGE: Duration = BACKLOG_SILENCE;

/// A read at least this big that fills all the space it was offered is
/// the first sign of a backlog: the kernel may hold more, and it already
/// exceeds what live traffic brings between two wake-ups.
pub const BACKLOG_READ: usize = RX_BUF / 2;

/// Replay rate, in frames per second, when nothing is known of the bus: a
/// reader with the default queue (~277 classic frames) that does not run
/// for half a second still loses nothing. Measured: python-can beside
/// candump in UML on a loaded host lost frames at 1,000/s, none at 500/s.
/// Never a limit on live traffic: a replay that new frames keep up with
/// ends ([`REPLAY_ESCAPE`]).
pub const REPLAY_FLOOR: u32 = 500;

/// A replay runs at most this many times the bus's rate: a backlog left by
/// a stall of S seconds drains within S seconds while the bus goes on,
/// and readers that kept up with the bus get twice its pace, no more.
pub const REPLAY_MULTIPLE: u32 = 2;

/// Frames a replay may release at once (one `sendmmsg`): an eighth of a
/// default reader queue, so a reader descheduled for a moment keeps up.
pub const REPLAY_BURST: u32 = CAN_BATCH as u32;

/// Within [`REPLAY_RESUME`] of a replay that caught up, a read after a
/// silence bigger than a burst of classic frames (18 bytes each in
/// protocol v1) is the rest of the backlog, even if it did not fill its
/// space: written at once it would overrun readers that a burst does not.
pub const RESUME_READ: usize = REPLAY_BURST as usize * 18;

/// [`RESUME_READ`] in protocol version 2: a burst of 26-byte `t` messages.
pub const RESUME_READ_V2: usize = REPLAY_BURST as usize * 26;

/// How much lateness a replay's wake-up may make up for (two
/// [`PACE_TICK`]s: a coarse timer, as UML's, wakes a loop a tick late), so
/// a fast pace is not cut to a burst per timer tick.
pub const REPLAY_LATENESS: Duration = Duration::from_millis(10);

/// Frames a late wake-up of a replay may release at once (in batches of
/// [`REPLAY_BURST`]): half a default reader queue (238 frames on Linux
/// 7.2, 278 on 6.1). Only a fast pace comes near it: at 500 frames/s,
/// [`REPLAY_LATENESS`] is worth 5 frames.
pub const REPLAY_CATCH_UP: u32 = 4 * REPLAY_BURST;

/// How long, in their arrival times, frames that arrived after a replay
/// began (and past [`FAR_STOCK`] of them) may arrive at least as fast as
/// the replay releases them, while frames wait their turn, before the
/// replay ends: the backlog does not shrink, and a pace below the bus's
/// would never catch up. A quarter second, as [`RATE_WINDOW`]: long
/// enough that a few reads' receive stamps measure it, short enough that
/// the reservoir ([`REPLAY_RESERVOIR`]) takes what a bus faster than the
/// replay sends meanwhile.
pub const REPLAY_ESCAPE: Duration = RATE_WINDOW;

/// Most bytes of protocol v1 that the far end can hold back while this end
/// is stalled, and send once it reads again, as a tcpcan there sizes its
/// buffers: its TCP send buffer as the kernel doubles it ([`TCP_SNDBUF`]),
/// its tunnel buffer ([`TX_BUF`]) and its CAN receive queue (~1,360
/// frames of 18 bytes, rounded up). It arrives after the replay began, in
/// a lump or in several as TCP's window opens: until a replay has read
/// more new data than this, new data is no proof that the bus is busy
/// ([`REPLAY_ESCAPE`]). A far end that holds back more (the Python
/// original buffers without bound) may end a replay early if its bus goes
/// on: what follows is written at once, as with `--replay-rate 0`.
pub const FAR_STOCK: usize = 2 * TCP_SNDBUF + TX_BUF + 32 * 1024;

/// [`FAR_STOCK`] of a far end that speaks protocol version 2: its send
/// buffer is [`TCP_SNDBUF_V2`] and its CAN receive queue's frames are
/// 26-byte `t` messages (~1,360 of them, rounded up). Measured: with
/// version 1's figure, a desk stalled 3 s at 5,000 frames/s took what its
/// gateway held back for live traffic and ended its replay after 28 s.
pub const FAR_STOCK_V2: usize = 2 * TCP_SNDBUF_V2 + TX_BUF + 40 * 1024;

/// Bytes a replay may take from TCP beyond what it has released
/// ([`crate::buf::Reservoir`]): twice what a version 2 far end holds back
/// ([`FAR_STOCK_V2`], ~430 KiB), so a stall's whole leftover leaves the
/// far end at once, and as much again of a bus faster than the replay
/// before the escape ([`REPLAY_ESCAPE`]) ends it. Reads stopped at the
/// session's buffer instead: the far end, its TCP send buffer full, then
/// reads its CAN socket only as that buffer drains in lumps (a third of it
/// at a time, at the replay's pace), and a busy bus overflows its ~1,360
/// frame queue meanwhile. Measured in UML, stalls of 25,000 frames in a
/// flood of ~20,000 frames/s: the tunnel kept 2.3 to 2.6 k frames fewer of
/// each stall than with `--replay-rate 0` (best runs of 6.1 and 7.2), and
/// with the reservoir as many.
pub const REPLAY_RESERVOIR: usize = 2 * FAR_STOCK_V2;

/// For this long after a replay caught up, a full read after a silence is
/// the rest of its backlog whatever the age of its data: TCP may hold
/// part of a backlog back (a segment the stalled desk's kernel had no room
/// for is sent again when the retransmission timer fires, 0.2 s and then
/// doubling), and sends it fresh after the replay drained the rest.
pub const REPLAY_RESUME: Duration = Duration::from_secs(2);

/// Shortest interval between two wake-ups of a pacing session: frames go
/// out in small batches, not one system call each.
pub const PACE_TICK: Duration = Duration::from_millis(5);

/// Live traffic is measured in windows this long; a shorter one (traffic
/// that a backlog interrupted) is not trusted as a rate.
pub const RATE_WINDOW: Duration = Duration::from_millis(250);

/// How long one mapping of kernel receive stamps (the realtime clock)
/// onto the monotonic clock is used to time TCP reads for the pacer
/// ([`crate::pace`]): two clock reads (taken together, so the mapping is
/// exact) per second of traffic instead of one per read (a system call
/// where the vDSO has no clock). NTP's slewing moves the two clocks apart
/// by at most half a millisecond in that time; a step of the realtime
/// clock within it shifts the times of reads by at most that step, once
/// (a step back past the mapping, or forward by more than this, renews it
/// at once).
pub const STAMP_MAPPING: Duration = Duration::from_secs(1);

/// A live window that a stall cut short counts as the bus's rate if it
/// lasted this long: the bus was just that busy, and a replay must not go
/// slower (a flood that starts a moment before the desk is starved). Two
/// wake-ups of a desk reading a flood or more (each under a millisecond
/// apart with the default `--latency-budget`); a lone frame before a stall
/// spans none, and leaves the pace at [`REPLAY_FLOOR`].
pub const RATE_GLIMPSE: Duration = Duration::from_millis(10);

/// How long the busiest window is remembered as the bus's rate.
pub const RATE_MEMORY: Duration = Duration::from_secs(10);

/// Highest `--replay-rate`, in frames per second: above any CAN FD bus.
pub const MAX_REPLAY_RATE: u32 = 1_000_000;

// ----- coalescing reads under load (src/coalesce.rs, --latency-budget) -----

/// Frames per second above which a side that woke for a few frames waits
/// before reading again. Twice 1,000/s, the rate whose p99 latency the
/// benchmark holds unchanged: a jittery 1 kfps stream does not cross it,
/// and below it every frame is read the moment it arrives, as without
/// coalescing.
pub const COALESCE_RATE: u64 = 2_000;

/// A wake-up on the CAN side that took more frames than this is not
/// followed by a wait: it already cost under a tenth of a system call per
/// frame, and the queue behind it may be long. Half a batch, so that
/// bursts of the size the performance guard sends (25) are read as they
/// come.
pub const COALESCE_FEW: usize = CAN_BATCH / 2;

/// The share of `--latency-budget`, in quarters, that the CAN side may
/// wait; the TCP side has the rest. A frame crosses one CAN side (where it
/// enters the tunnel) and one TCP side (where it leaves), so the two waits
/// add up to at most the budget. The bus side gets most: a bus delivers
/// frames one at a time, so that is where a wait gathers them. Measured on
/// the benchmark at 5 kfps, half on each side left the wake-ups per frame
/// at 0.29 / 0.28 (server / client), the TCP side's waits finding nothing
/// that the peer's had not gathered; this split, 0.23 / 0.19.
pub const COALESCE_CAN_QUARTERS: u32 = 3;

/// `--latency-budget` by default: 1 ms end to end (0.75 ms on the CAN
/// side, 0.25 ms on the TCP side); the bound, and invisible behind
/// any network path (1-100 ms).
pub const DEFAULT_LATENCY_BUDGET: Duration = Duration::from_millis(1);

/// Highest `--latency-budget`: half of [`BACKLOG_SILENCE`], so a wait is
/// never taken by desk pacing for the silence before a backlog. (A wait is
/// anyway cut to the time a batch takes to fill, at most 16 ms.)
pub const MAX_LATENCY_BUDGET: Duration = Duration::from_millis(50);
