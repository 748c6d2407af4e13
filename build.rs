//! Links the `tributary` binary with packed relative relocations (`-z
//! pack-relative-relocs`, DT_RELR) where the C library supports them (glibc 2.36 and
//! later). The executable's relative relocations, 5.8 MB in a release build (most of them
//! DataFusion's), then take 70 KB, which the dynamic loader reads at every start: an
//! export's peak RSS drops by about 7 MB (docs/performance.md). Linkers that predate the
//! option (binutils < 2.38) ignore it with a warning.
//!
//! `TRIBUTARY_PACK_RELOCS=0` links without them, `=1` with them whatever the machine.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TRIBUTARY_PACK_RELOCS");
    let var = |key| std::env::var(key).unwrap_or_default();
    let pack = match var("TRIBUTARY_PACK_RELOCS").as_str() {
        "0" => false,
        "1" => true,
        // The binary runs where it is built (no cross-compiling): the C library here is
        // the one it will load.
        _ => {
            var("CARGO_CFG_TARGET_OS") == "linux"
                && var("CARGO_CFG_TARGET_ENV") == "gnu"
                && var("TARGET") == var("HOST")
                && glibc_at_least(2, 36)
        }
    };
    if pack {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION` prints `glibc 2.36`) is at
/// least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
