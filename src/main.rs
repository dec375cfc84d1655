//! How does a command line become an exit status? Arguments -> configuration
//! -> logging -> run; 0 after a signal, 1 on error, 2 on bad usage.

use std::io::{LineWriter, Write};
use std::process::ExitCode;

use argh::FromArgs;
use simplelog::{ConfigBuilder, LevelFilter, LevelPadding, WriteLogger};
use tcpcan::cli::{Args, Config};

fn init_logging(verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    // Syslog (or journald) adds time and host; we print `[LEVEL] message`.
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_level_padding(LevelPadding::Off)
        .build();
    // Line-buffered so each record reaches stderr (and `logger`) in one write.
    let _ = WriteLogger::init(level, config, LineWriter::new(std::io::stderr()));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.get(1).map(String::as_str) == Some("--version") {
        println!("tcpcan {} ({})", tcpcan::VERSION, tcpcan::TARGET);
        return ExitCode::SUCCESS;
    }
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = match Args::from_args(&["tcpcan"], strs.get(1..).unwrap_or_default()) {
        Ok(a) => a,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    // argh may spread one complaint over lines; keep it to one.
                    let msg: Vec<&str> = early.output.split_whitespace().collect();
                    let _ = writeln!(std::io::stderr(), "tcpcan: {} (see --help)", msg.join(" "));
                    ExitCode::from(2)
                }
            };
        }
    };
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("tcpcan: {msg}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.verbose);
    if let Some(warning) = config.ignored {
        log::warn!("{warning}");
    }
    match tcpcan::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpcan: {e}");
            ExitCode::FAILURE
        }
    }
}
