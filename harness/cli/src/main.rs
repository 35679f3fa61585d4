//! The `supo` command-line tool; see `supo --help`.

/// mimalloc: the BFCL replay and the JSON commands allocate many small objects (about a
/// third of `supo bfcl replay`'s instructions went to glibc's malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(supo_cli::main());
}
