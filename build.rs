//! Records the target triple for `tcpcan --version`.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=TCPCAN_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
