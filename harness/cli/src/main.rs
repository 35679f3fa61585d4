//! The `supo` command-line tool; see `supo --help`.

use clap::Parser;

/// mimalloc: the BFCL replay and the JSON commands allocate many small objects (about a
/// third of `supo bfcl replay`'s instructions went to glibc's malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = supo_cli::Cli::parse();
    if let Err(e) = supo_cli::run(cli) {
        eprintln!("supo: {e}");
        std::process::exit(e.exit_code());
    }
}
