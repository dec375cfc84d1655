//! What did the user ask for? The argh struct (flags compatible with the
//! Python tcpcan 0.0.2) and its validation into a [`Config`], in which the
//! mode (server or client) and the flags that only it takes are one value.

use std::time::Duration;

use argh::FromArgs;

use crate::can::CanOptions;
use crate::filter::Filters;
use crate::filter::{parse_error_mask, parse_filter, CAN_ERR_MASK};
use crate::limits::{
    COALESCE_CAN_QUARTERS, DEFAULT_LATENCY_BUDGET, MAX_ALLOW, MAX_CLIENTS, MAX_FILTERS,
    MAX_LATENCY_BUDGET, MAX_REPLAY_RATE,
};
use crate::negotiation::{MAX_VERSION, MIN_VERSION};
use crate::net::Cidr;
use crate::pace::Pacing;
use crate::session::SessionConfig;

/// Tunnel a SocketCAN interface over TCP (protocol v1, wire-compatible with
/// the Python tcpcan 0.0.2; v2 between tcpcan peers).
#[derive(FromArgs, Debug)]
#[argh(
    example = "On the gateway, serve can0 to the local network:\n  $ tcpcan --serve --host 0.0.0.0 --allow 192.168.1.0/24 can0\nOn a desk machine, bridge a virtual bus to it:\n  $ tcpcan --host gateway.local vcan0\nThrough ssh, with no port open on the gateway (its authorized_keys line:\ncommand=\"tcpcan --stdio can0\",restrict ssh-ed25519 AAAA... desk):\n  $ tcpcan --via 'ssh -T -o BatchMode=yes -o ServerAliveInterval=5 gateway.local' vcan0",
    note = "Filters use candump syntax: <can_id>:<can_mask> matches when id & mask == can_id & mask,\n<can_id>~<can_mask> inverts it; an 8-digit id is extended (29 bit). Example: --filter 123:7FF\n--filter 18FEF100:1FFFFFFF. `tcpcan --version` prints the version and target.\nExit status: 0 after SIGINT/SIGTERM, 1 on an error, 2 on a usage error."
)]
pub struct Args {
    /// TCP host to listen on (--serve) or connect to; a name, an IPv4 or an
    /// IPv6 literal, `::` listens dual-stack (default: localhost)
    // Options, so that --stdio and --via can refuse them when given.
    #[argh(option)]
    pub host: Option<String>,

    /// TCP port (default: 20010)
    #[argh(option)]
    pub port: Option<u16>,

    /// listen for clients instead of connecting to a server
    #[argh(switch)]
    pub serve: bool,

    /// serve one peer, protocol v1, on standard input and output (as sshd's
    /// forced command) and exit when input ends; opens no socket
    #[argh(switch)]
    pub stdio: bool,

    /// client: run CMD with /bin/sh -c and speak over its standard input
    /// and output instead of TCP (e.g. 'ssh -T gateway'); CMD is started
    /// again as a lost connection is dialed again; its stderr is logged
    #[argh(option)]
    pub via: Option<String>,

    /// client: exit with status 1 instead of retrying every second when the
    /// connection fails or is lost
    #[argh(switch)]
    pub no_retry: bool,

    /// debug logging (default level: info)
    #[argh(switch, short = 'v')]
    pub verbose: bool,

    /// wait for a missing CAN interface at start-up instead of failing
    #[argh(switch)]
    pub wait: bool,

    /// server: accept only peers in this address block, e.g. 10.0.0.0/8
    /// (repeatable; default: everyone who can reach the port)
    #[argh(option)]
    pub allow: Vec<String>,

    /// never write frames from TCP to the bus (they are counted and dropped)
    #[argh(switch)]
    pub read_only: bool,

    /// server: most clients at once, 1 to 64 (default: 64)
    // An Option, so that a client given it explicitly can be told so.
    #[argh(option)]
    pub max_clients: Option<usize>,

    /// kernel filter for frames read from the bus, <can_id>:<can_mask> or
    /// <can_id>~<can_mask> in hex (repeatable; default: all frames)
    #[argh(option)]
    pub filter: Vec<String>,

    /// forward CAN error frames read from the bus to peers
    #[argh(switch)]
    pub error_frames: bool,

    /// error classes forwarded with --error-frames, hex CAN_ERR_* bits
    /// (default: 1FFFFFFF, all)
    #[argh(option)]
    pub error_mask: Option<String>,

    /// drop a frame the bus cannot take (ENOBUFS) after this many
    /// milliseconds (default: 1000)
    #[argh(option, default = "1000")]
    pub tx_timeout: u64,

    /// virtual interface (vcan, vxcan): replay a backlog left by a stall at
    /// most this many frames/s, 0 never paces (default: twice the bus's
    /// recent rate, at least 500)
    #[argh(option)]
    pub replay_rate: Option<u32>,

    /// under load, how long in milliseconds a frame may wait so that many
    /// are read and written per system call, e.g. 0.25; isolated frames and
    /// streams below 2,000 frames/s never wait; 0 turns it off (default: 1)
    #[argh(option)]
    pub latency_budget: Option<String>,

    /// TCP keepalive idle time and probe interval in seconds; a silent peer
    /// is dropped after 4x this (default: 10)
    #[argh(option, default = "10")]
    pub keepalive: u64,

    /// close a connection that has not agreed a protocol version within this
    /// many seconds (default: 10)
    #[argh(option, default = "10")]
    pub handshake_timeout: u64,

    /// server: also serve socketcand's protocol (python-can's
    /// interface="socketcand") on PORT or HOST:PORT, conventionally 29536
    /// (default: off; HOST defaults to --host)
    #[argh(option)]
    pub socketcand: Option<String>,

    /// with --socketcand: broadcast socketcand's discovery beacon (UDP port
    /// 42000, every 2 s) to the listening address's subnet
    #[argh(switch)]
    pub beacon: bool,

    /// write every frame carried to FILE in candump -l's log format, with
    /// the peer's bus time in version 2; own frames marked ' T' (appends;
    /// when the disk is slow, lines are dropped and counted, never frames)
    #[argh(option)]
    pub log: Option<String>,

    /// highest protocol version to speak: 2 (tcpcan's own: bus time and
    /// losses reach the peer) or 1 (the Python original's) (default: 2,
    /// stepping down to 1 for a peer that speaks only 1)
    #[argh(option)]
    pub protocol: Option<u32>,

    /// the SocketCAN interface, e.g. can0 or vcan0
    #[argh(positional)]
    pub canif: String,
}

/// `--host` when not given: the reference's.
const DEFAULT_HOST: &str = "localhost";
/// `--port` when not given: the reference's.
const DEFAULT_PORT: u16 = 20010;

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// CAN interface name.
    pub canif: String,
    /// TCP host.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Server or client, with what only that mode takes.
    pub mode: ModeConfig,
    /// Debug logging.
    pub verbose: bool,
    /// Wait for a missing interface at start-up.
    pub wait: bool,
    /// Options for every CAN socket that carries traffic.
    pub can: CanOptions,
    /// Per-session behaviour.
    pub session: SessionConfig,
    /// TCP keepalive time.
    pub keepalive: Duration,
    /// `--socketcand`: host and port of the socketcand listener.
    pub socketcand: Option<(String, u16)>,
    /// `--beacon`: announce the socketcand listener.
    pub beacon: bool,
    /// A flag given that this mode ignores, to warn of once logging runs.
    pub ignored: Option<&'static str>,
    /// `--log FILE`: where every frame's line goes.
    pub log: Option<String>,
    /// `--latency-budget`: longest wait to coalesce reads (zero: never).
    pub latency_budget: Duration,
}

impl Config {
    /// How long a CAN side may wait to coalesce reads: most of the latency
    /// budget ([`COALESCE_CAN_QUARTERS`]). A frame through a tunnel crosses
    /// one CAN side (where it enters) and one TCP side (where it leaves),
    /// so two ends with the same budget add at most the budget between
    /// them.
    pub fn wait_can(&self) -> Duration {
        self.latency_budget * COALESCE_CAN_QUARTERS / 4
    }

    /// How long a TCP side may wait to coalesce reads: the rest of the
    /// budget.
    pub fn wait_tcp(&self) -> Duration {
        self.latency_budget - self.wait_can()
    }
}

/// `--latency-budget MS`: milliseconds with up to three decimals (no
/// floating point: its parser alone would cost the small builds kilobytes).
fn latency_budget(arg: Option<&str>) -> Result<Duration, String> {
    let Some(arg) = arg else {
        return Ok(DEFAULT_LATENCY_BUDGET);
    };
    let (whole, frac) = arg.split_once('.').unwrap_or((arg, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let us = match (whole.parse::<u64>(), frac.len() <= 3 && digits(frac)) {
        (Ok(ms), true) if digits(whole) => {
            let padded = frac.bytes().chain(core::iter::repeat(b'0')).take(3);
            let frac_us = padded.fold(0, |u, b| u * 10 + u64::from(b - b'0'));
            ms.checked_mul(1000).and_then(|u| u.checked_add(frac_us))
        }
        _ => None,
    };
    match us.map(Duration::from_micros) {
        Some(d) if d <= MAX_LATENCY_BUDGET => Ok(d),
        _ => Err(format!(
            "--latency-budget must be 0 (off) to {} ms with at most 3 decimals, e.g. 0.25, not '{arg}'",
            MAX_LATENCY_BUDGET.as_millis()
        )),
    }
}

/// `--protocol N`: 1 or 2.
fn protocol(arg: Option<u32>) -> Result<u32, String> {
    match arg {
        None => Ok(MAX_VERSION),
        Some(v) if (MIN_VERSION..=MAX_VERSION).contains(&v) => Ok(v),
        Some(v) => Err(format!(
            "--protocol must be {MIN_VERSION} or {MAX_VERSION}, not {v}"
        )),
    }
}

/// `--socketcand [HOST:]PORT`, HOST defaulting to `--host`; an IPv6 HOST
/// is written in brackets, `[::]:29536`.
fn socketcand_addr(a: &Args) -> Result<Option<(String, u16)>, String> {
    let Some(arg) = &a.socketcand else {
        return Ok(None);
    };
    if !a.serve {
        return Err("--socketcand only applies with --serve".to_string());
    }
    let (host, port) = match arg.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => (a.host.as_deref().unwrap_or(DEFAULT_HOST), arg.as_str()),
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 && !host.is_empty() => Ok(Some((host.to_string(), p))),
        _ => Err(format!("--socketcand must be [HOST:]PORT, not '{arg}'")),
    }
}

/// The mode the daemon runs in, and the flags that apply only to it.
// Built once from the command line and never moved in a hot path, so the
// inline --allow table is cheaper than a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeConfig {
    /// `--serve`: accept clients.
    Server {
        /// Address blocks allowed to connect (empty: everyone).
        allow: heapless::Vec<Cidr, MAX_ALLOW>,
        /// Most clients at once.
        max_clients: usize,
    },
    /// Connect to a server.
    Client {
        /// Retry after failures (no `--no-retry`).
        retry: bool,
    },
    /// `--stdio`: serve one peer on standard input and output.
    Stdio,
    /// `--via CMD`: a client over the pipes of a command it runs.
    Via {
        /// The command, for `/bin/sh -c`.
        cmd: String,
        /// Start it again after it ends (no `--no-retry`).
        retry: bool,
    },
}

fn secs(name: &str, v: u64) -> Result<Duration, String> {
    if v == 0 || v > 3600 {
        return Err(format!("--{name} must be 1 to 3600 seconds, not {v}"));
    }
    Ok(Duration::from_secs(v))
}

/// The mode and its flags; a flag the other mode takes is a usage error,
/// not something to ignore silently.
fn mode_config(a: &Args) -> Result<ModeConfig, String> {
    if a.replay_rate.is_some() && (a.stdio || a.via.is_some()) {
        // Pacing starts only on proof that data waited in the kernel (a
        // TCP receive stamp); a pipe has none, so the flag would do nothing.
        let mode = if a.stdio { "--stdio" } else { "--via" };
        return Err(format!(
            "--replay-rate cannot apply with {mode}: pipes carry no receive stamps, so no backlog is ever replayed"
        ));
    }
    if a.stdio {
        return stdio_config(a);
    }
    if !a.serve {
        if !a.allow.is_empty() {
            return Err("--allow only applies with --serve".to_string());
        }
        if a.max_clients.is_some() {
            return Err("--max-clients only applies with --serve".to_string());
        }
        let retry = !a.no_retry;
        return match &a.via {
            None => Ok(ModeConfig::Client { retry }),
            Some(_) if a.host.is_some() || a.port.is_some() => {
                Err("--via CMD takes the place of --host and --port: give one or the other".into())
            }
            Some(cmd) if cmd.trim().is_empty() => {
                Err("--via needs a command, e.g. --via 'ssh -T gateway'".to_string())
            }
            Some(cmd) => Ok(ModeConfig::Via {
                cmd: cmd.clone(),
                retry,
            }),
        };
    }
    if a.via.is_some() {
        return Err("--via only applies to a client, not with --serve".to_string());
    }
    let max_clients = a.max_clients.unwrap_or(MAX_CLIENTS);
    if !(1..=MAX_CLIENTS).contains(&max_clients) {
        return Err(format!(
            "--max-clients must be 1 to {MAX_CLIENTS}, not {max_clients}"
        ));
    }
    let mut allow = heapless::Vec::new();
    for s in &a.allow {
        allow
            .push(Cidr::parse(s)?)
            .map_err(|_| format!("at most {MAX_ALLOW} --allow entries"))?;
    }
    Ok(ModeConfig::Server { allow, max_clients })
}

/// `--stdio`: one peer on standard input and output, so every flag about
/// sockets, listening or dialing is refused rather than ignored.
fn stdio_config(a: &Args) -> Result<ModeConfig, String> {
    let socket_flags = [
        (a.serve, "--serve"),
        (a.host.is_some(), "--host"),
        (a.port.is_some(), "--port"),
        (!a.allow.is_empty(), "--allow"),
        (a.max_clients.is_some(), "--max-clients"),
        (a.socketcand.is_some(), "--socketcand"),
        (a.beacon, "--beacon"),
        (a.via.is_some(), "--via"),
        (a.no_retry, "--no-retry"),
    ];
    match socket_flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(format!(
            "{flag} cannot apply with --stdio, which serves one peer on standard input and output"
        )),
        None => Ok(ModeConfig::Stdio),
    }
}

/// `--replay-rate`: absent, the pace is learned from the stream; 0 turns
/// pacing off.
fn pacing(rate: Option<u32>) -> Result<Pacing, String> {
    match rate {
        None => Ok(Pacing::Learned),
        Some(0) => Ok(Pacing::Off),
        Some(r) if r <= MAX_REPLAY_RATE => Ok(Pacing::Fixed(r)),
        Some(r) => Err(format!(
            "--replay-rate must be 0 (off) to {MAX_REPLAY_RATE} frames/s, not {r}"
        )),
    }
}

impl Config {
    /// Validates raw flags into a configuration; the error is one line
    /// naming the flag at fault.
    pub fn from_args(a: Args) -> Result<Config, String> {
        if a.canif.is_empty() || a.canif.len() > libc::IF_NAMESIZE - 1 {
            return Err(format!("bad interface name '{}'", a.canif));
        }
        if a.tx_timeout == 0 || a.tx_timeout > 3_600_000 {
            return Err(format!(
                "--tx-timeout must be 1 to 3600000 ms, not {}",
                a.tx_timeout
            ));
        }
        let mode = mode_config(&a)?;
        let socketcand = socketcand_addr(&a)?;
        if a.beacon && socketcand.is_none() {
            return Err("--beacon needs --socketcand".to_string());
        }
        let mut list = heapless::Vec::new();
        for s in &a.filter {
            let f = parse_filter(s).map_err(|e| e.to_string())?;
            list.push(f)
                .map_err(|_| format!("at most {MAX_FILTERS} --filter entries"))?;
        }
        let error_mask = match (&a.error_mask, a.error_frames) {
            (Some(_), false) => return Err("--error-mask needs --error-frames".to_string()),
            (Some(m), true) => parse_error_mask(m)?,
            (None, true) => CAN_ERR_MASK,
            (None, false) => 0,
        };
        Ok(Config {
            canif: a.canif,
            host: a.host.unwrap_or_else(|| DEFAULT_HOST.to_string()),
            port: a.port.unwrap_or(DEFAULT_PORT),
            mode,
            verbose: a.verbose,
            wait: a.wait,
            can: CanOptions {
                filters: if list.is_empty() {
                    Filters::All
                } else {
                    Filters::List(list)
                },
                error_mask,
            },
            session: SessionConfig {
                read_only: a.read_only,
                error_frames: a.error_frames,
                tx_timeout: Duration::from_millis(a.tx_timeout),
                handshake_timeout: secs("handshake-timeout", a.handshake_timeout)?,
                pacing: pacing(a.replay_rate)?,
                protocol: protocol(a.protocol)?,
            },
            keepalive: secs("keepalive", a.keepalive)?,
            socketcand,
            beacon: a.beacon,
            // The Python original accepts and ignores it with --serve, so a
            // command line written for it must still start; but say so.
            ignored: (a.serve && a.no_retry)
                .then_some("--no-retry only applies to a client; ignored with --serve"),
            latency_budget: latency_budget(a.latency_budget.as_deref())?,
            log: a.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::from_args(&["tcpcan"], args).map_err(|e| e.output)?;
        Config::from_args(a)
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = parse(&["vcan0"]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 20010));
        assert_eq!(c.mode, ModeConfig::Client { retry: true });
        let c = parse(&["--serve", "vcan0"]).unwrap();
        assert_eq!(
            c.mode,
            ModeConfig::Server {
                allow: heapless::Vec::new(),
                max_clients: MAX_CLIENTS
            }
        );
        assert_eq!(c.can.filters, Filters::All);
        assert_eq!(c.can.error_mask, 0);
        assert_eq!(c.keepalive, Duration::from_secs(10));
    }

    #[test]
    fn socketcand_listens_on_a_port_of_the_same_host_or_its_own() {
        let c = parse(&["--serve", "--host", "0.0.0.0", "--socketcand", "29536", "c"]).unwrap();
        assert_eq!(c.socketcand, Some(("0.0.0.0".to_string(), 29536)));
        let c = parse(&["--serve", "--socketcand", "[::1]:7", "c"]).unwrap();
        assert_eq!(c.socketcand, Some(("::1".to_string(), 7)));
        let c = parse(&["--serve", "--socketcand", "10.0.0.1:29536", "c"]).unwrap();
        assert_eq!(c.socketcand, Some(("10.0.0.1".to_string(), 29536)));
        assert_eq!(parse(&["--serve", "c"]).unwrap().socketcand, None);
        for bad in ["0", "x", "h:", ":5", "70000"] {
            let e = parse(&["--serve", "--socketcand", bad, "c"]).unwrap_err();
            assert!(e.contains("--socketcand must be [HOST:]PORT"), "{bad}: {e}");
        }
        let e = parse(&["--socketcand", "29536", "c"]).unwrap_err();
        assert_eq!(e, "--socketcand only applies with --serve");
        let e = parse(&["--serve", "--beacon", "c"]).unwrap_err();
        assert_eq!(e, "--beacon needs --socketcand");
        assert!(
            parse(&["--serve", "--socketcand", "1", "--beacon", "c"])
                .unwrap()
                .beacon
        );
    }

    #[test]
    fn reference_flags() {
        let c = parse(&["--host", "::", "--port", "1234", "--no-retry", "-v", "can0"]).unwrap();
        assert_eq!(c.ignored, None);
        assert_eq!((c.host.as_str(), c.port, c.verbose), ("::", 1234, true));
        assert_eq!(c.mode, ModeConfig::Client { retry: false });
    }

    #[test]
    fn filters_and_error_frames() {
        let c = parse(&[
            "--filter",
            "123:7FF",
            "--filter",
            "18FEF100:1FFFFFFF",
            "--error-frames",
            "can0",
        ])
        .unwrap();
        match c.can.filters {
            Filters::List(l) => assert_eq!(l.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.can.error_mask, CAN_ERR_MASK);
        let c = parse(&["--error-frames", "--error-mask", "40", "can0"]).unwrap();
        assert_eq!(c.can.error_mask, 0x40);
    }

    #[test]
    fn replay_rate_is_learned_unless_given_and_0_turns_it_off() {
        let pacing = |args: &[&str]| parse(args).unwrap().session.pacing;
        assert_eq!(pacing(&["vcan0"]), Pacing::Learned);
        assert_eq!(pacing(&["--replay-rate", "0", "vcan0"]), Pacing::Off);
        assert_eq!(
            pacing(&["--replay-rate", "2000", "vcan0"]),
            Pacing::Fixed(2000)
        );
    }

    #[test]
    fn latency_budget_takes_fractional_milliseconds_and_0_turns_it_off() {
        let budget = |args: &[&str]| parse(args).unwrap().latency_budget;
        assert_eq!(budget(&["vcan0"]), DEFAULT_LATENCY_BUDGET);
        assert_eq!(budget(&["--latency-budget", "0", "vcan0"]), Duration::ZERO);
        let us = Duration::from_micros;
        assert_eq!(budget(&["--latency-budget", "0.25", "vcan0"]), us(250));
        assert_eq!(budget(&["--latency-budget", "2.5", "vcan0"]), us(2_500));
        assert_eq!(budget(&["--latency-budget", "0.001", "vcan0"]), us(1));
        assert_eq!(budget(&["--latency-budget", "50", "vcan0"]), us(50_000));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, word) in [
            (&["--serve", "--max-clients", "0", "c"][..], "--max-clients"),
            (
                &["--serve", "--max-clients", "65", "c"][..],
                "--max-clients",
            ),
            (&["--serve", "--allow", "10.0.0.0/40", "c"][..], "--allow"),
            (&["--filter", "zz", "c"][..], "bad filter"),
            (&["--error-mask", "4", "c"][..], "--error-frames"),
            (&["--keepalive", "0", "c"][..], "--keepalive"),
            (&["--tx-timeout", "0", "c"][..], "--tx-timeout"),
            (&["--replay-rate", "1000001", "c"][..], "--replay-rate"),
            (&["--replay-rate", "-5", "c"][..], "--replay-rate"),
            (&["--latency-budget", "50.001", "c"][..], "--latency-budget"),
            (&["--latency-budget", "0.0001", "c"][..], "--latency-budget"),
            (&["--latency-budget", "-1", "c"][..], "--latency-budget"),
            (&["--latency-budget", "+1", "c"][..], "--latency-budget"),
            (&["--latency-budget", ".5", "c"][..], "--latency-budget"),
            (&["--latency-budget", "1ms", "c"][..], "--latency-budget"),
            (&["--latency-budget", "1.2.3", "c"][..], "--latency-budget"),
            (&["--latency-budget", "", "c"][..], "--latency-budget"),
            (&["thisnameismuchtoolong"][..], "interface name"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(word), "{args:?}: {e}");
        }
    }

    #[test]
    fn server_flags_given_to_a_client_are_refused() {
        for (args, msg) in [
            (
                &["--allow", "10.0.0.0/8", "c"][..],
                "--allow only applies with --serve",
            ),
            (
                &["--max-clients", "64", "c"][..],
                "--max-clients only applies with --serve",
            ),
        ] {
            assert_eq!(parse(args).unwrap_err(), msg, "{args:?}");
        }
        let c = parse(&[
            "--serve",
            "--allow",
            "10.0.0.0/8",
            "--max-clients",
            "3",
            "c",
        ])
        .unwrap();
        match c.mode {
            ModeConfig::Server { allow, max_clients } => {
                assert_eq!((allow.len(), max_clients), (1, 3))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stdio_serves_with_every_session_flag_and_refuses_socket_flags_in_one_line() {
        let c = parse(&[
            "--stdio",
            "--read-only",
            "--filter",
            "123:7FF",
            "--error-frames",
            "--tx-timeout",
            "50",
            "--handshake-timeout",
            "3",
            "--latency-budget",
            "0.5",
            "can0",
        ])
        .unwrap();
        assert_eq!(c.mode, ModeConfig::Stdio);
        assert!(c.session.read_only && c.session.error_frames);
        for (flag, args) in [
            ("--host", &["--host", "h"][..]),
            ("--port", &["--port", "1"][..]),
            ("--allow", &["--allow", "10.0.0.0/8"][..]),
            ("--max-clients", &["--max-clients", "2"][..]),
            ("--socketcand", &["--socketcand", "29536"][..]),
            ("--serve", &["--serve"][..]),
            ("--via", &["--via", "ssh gw"][..]),
            ("--no-retry", &["--no-retry"][..]),
        ] {
            let mut argv = vec!["--stdio"];
            argv.extend_from_slice(args);
            argv.push("can0");
            let e = parse(&argv).unwrap_err();
            assert_eq!(
                e,
                format!("{flag} cannot apply with --stdio, which serves one peer on standard input and output")
            );
        }
    }

    #[test]
    fn replay_rate_is_refused_over_pipes_which_never_replay() {
        for (mode, args) in [
            ("--stdio", &["--stdio", "--replay-rate", "0", "vcan0"][..]),
            (
                "--via",
                &["--via", "ssh gw", "--replay-rate", "2000", "vcan0"][..],
            ),
        ] {
            assert_eq!(
                parse(args).unwrap_err(),
                format!("--replay-rate cannot apply with {mode}: pipes carry no receive stamps, so no backlog is ever replayed")
            );
        }
    }

    #[test]
    fn via_runs_a_command_in_place_of_dialing_and_keeps_no_retry() {
        let c = parse(&["--via", "ssh -T gw", "--no-retry", "vcan0"]).unwrap();
        let cmd = "ssh -T gw".to_string();
        assert_eq!(c.mode, ModeConfig::Via { cmd, retry: false });
        for (args, msg) in [
            (
                &["--via", "ssh gw", "--host", "gw", "c"][..],
                "--via CMD takes the place of --host and --port: give one or the other",
            ),
            (
                &["--via", "ssh gw", "--port", "22", "c"][..],
                "--via CMD takes the place of --host and --port: give one or the other",
            ),
            (
                &["--via", " ", "c"][..],
                "--via needs a command, e.g. --via 'ssh -T gateway'",
            ),
            (
                &["--serve", "--via", "ssh gw", "c"][..],
                "--via only applies to a client, not with --serve",
            ),
        ] {
            assert_eq!(parse(args).unwrap_err(), msg, "{args:?}");
        }
    }

    #[test]
    fn no_retry_with_serve_starts_as_the_original_does_but_is_warned_of() {
        let c = parse(&["--serve", "--no-retry", "can0"]).unwrap();
        assert!(matches!(c.mode, ModeConfig::Server { .. }));
        assert_eq!(
            c.ignored,
            Some("--no-retry only applies to a client; ignored with --serve")
        );
    }
}
