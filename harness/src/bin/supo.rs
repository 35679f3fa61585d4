//! The `supo` command-line tool; see `supo --help`.

use clap::Parser;

fn main() {
    let cli = supo_harness::cli::Cli::parse();
    if let Err(e) = supo_harness::cli::run(cli) {
        eprintln!("supo: {e}");
        std::process::exit(e.exit_code());
    }
}
