//! Loads a GGUF model and answers one chat message greedily, printing the speed.
//!
//! `cargo run --release -p supo-gguf --example generate -- MODEL.gguf "Say hi." [THREADS]`

use std::time::Instant;

use supo_core::model::{Decoder, TokenModel};
use supo_gguf::{GgufModel, GgufOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: generate MODEL.gguf [MESSAGE] [THREADS]")?;
    let message = args.next().unwrap_or_else(|| "Say hi.".into());
    let threads = args.next().map(|t| t.parse()).transpose()?;
    let t0 = Instant::now();
    let model = GgufModel::open(
        &path,
        &GgufOptions {
            threads,
            ..Default::default()
        },
    )?;
    println!(
        "loaded {} in {:.2} s: {:?}",
        model.name(),
        t0.elapsed().as_secs_f64(),
        model.hyper()
    );
    let prompt = model.chat_prompt(&message)?;
    let t1 = Instant::now();
    let mut d = model.start(&prompt)?;
    let prefill = t1.elapsed().as_secs_f64();
    let mut tokens = Vec::new();
    let t2 = Instant::now();
    while tokens.len() < 64 {
        let logits = d.logits();
        let next =
            (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b }) as u32;
        if Some(next) == model.end_token() {
            break;
        }
        tokens.push(next);
        d.push(next)?;
    }
    let gen = t2.elapsed().as_secs_f64();
    println!("{}", model.tokenizer().decode(&tokens));
    println!(
        "prompt {} tokens in {prefill:.3} s ({:.1} tok/s); {} tokens generated in {gen:.3} s ({:.1} tok/s)",
        prompt.len(),
        prompt.len() as f64 / prefill,
        tokens.len(),
        tokens.len() as f64 / gen.max(1e-9)
    );
    Ok(())
}
