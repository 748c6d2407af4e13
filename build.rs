//! Link options of the `tributary` binary. Both decide how much of the executable a run
//! keeps resident, which peak RSS counts (docs/performance.md, "Packed relocations" and
//! "The plain path's code laid out together"):
//!
//! - **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR) where the C
//!   library supports them (glibc 2.36 and later). The executable's relative relocations,
//!   5.8 MB in a release build (most of them DataFusion's), then take 70 KB, which the
//!   dynamic loader reads at every start: an export's peak RSS drops by about 7 MB.
//!   Linkers that predate the option (binutils < 2.38) ignore it with a warning.
//!   `TRIBUTARY_PACK_RELOCS=0` links without them, `=1` with them whatever the machine.
//! - **The plain path's code laid out together** (`--symbol-ordering-file`, lld's and
//!   mold's). `link/plain-path.order` lists the functions a plain export runs (from
//!   PostgreSQL, SQLite and MySQL, profiled by `cargo bench --bench pg -- text-order`);
//!   the linker puts them first, in that order, so that they fill a few contiguous pages
//!   instead of being scattered over the 140 MB of text that DataFusion and Delta Lake
//!   bring, where the kernel's fault-around maps each one's cold neighbours too. Names the
//!   build does not define (another toolchain or lock file changes their hashes) are
//!   skipped silently: the binary is then laid out as without the file, never wrongly.
//!   On by default for release builds of `x86_64-unknown-linux-gnu`, where rustc links
//!   with its own lld, unless another linker is configured; `TRIBUTARY_ORDER_TEXT=0`
//!   links without it, `=1` with it whatever the build.

use std::process::Command;

/// The symbol ordering file, relative to the package root.
const ORDER_FILE: &str = "link/plain-path.order";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=TRIBUTARY_PACK_RELOCS");
    println!("cargo:rerun-if-env-changed=TRIBUTARY_ORDER_TEXT");
    let var = |key| std::env::var(key).unwrap_or_default();
    let native_gnu = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("TARGET") == var("HOST");
    let pack = match var("TRIBUTARY_PACK_RELOCS").as_str() {
        "0" => false,
        "1" => true,
        // The binary runs where it is built (no cross-compiling): the C library here is
        // the one it will load.
        _ => native_gnu && glibc_at_least(2, 36),
    };
    if pack {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let order = match var("TRIBUTARY_ORDER_TEXT").as_str() {
        "0" => false,
        "1" => true,
        // The file names the symbols of a release build: a debug build's differ (their
        // hashes include the profile's crate metadata), so it would only cost link time.
        _ => {
            var("TARGET") == "x86_64-unknown-linux-gnu"
                && var("PROFILE") == "release"
                && default_linker(&var("RUSTC_LINKER"), &var("CARGO_ENCODED_RUSTFLAGS"))
        }
    };
    if order {
        let root = std::path::PathBuf::from(var("CARGO_MANIFEST_DIR"));
        let file = root.join(ORDER_FILE);
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            file.display()
        );
        // A name the build does not define is expected (see above), not worth a warning
        // per line.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the target links with rustc's default linker (its own lld on
/// x86_64-unknown-linux-gnu since Rust 1.90): no linker set in Cargo's configuration
/// (`RUSTC_LINKER`) and none chosen through the flags. GNU ld and gold do not know
/// `--symbol-ordering-file`.
fn default_linker(rustc_linker: &str, encoded_rustflags: &str) -> bool {
    rustc_linker.is_empty()
        && ![
            "linker=",
            "fuse-ld",
            "linker-features",
            "link-self-contained",
        ]
        .iter()
        .any(|flag| encoded_rustflags.contains(flag))
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
