//! End to end: a real `supo serve` (the built-in model) on a free local port, `supo bfcl eval`
//! against it on a few BFCL multi-turn entries with a working context small enough to force
//! summaries, and the verdicts, segments, summaries and exported training rows checked against
//! each other, the server's own token counts and BFCL's checker.

mod agent_common;

use std::collections::BTreeMap;
use std::process::Command;

use agent_common::{bfcl_available, Server};
use serde_json::Value;
use supo_agent::bfcl::{load_category, BfclEnv};
use supo_agent::http::{ChatMessage, HttpConfig, HttpPolicy};
use supo_agent::{system_prompt, Environment, ToolFormat};
use supo_core::context::{DEFAULT_SUMMARY_INSTRUCTION, DEFAULT_SUMMARY_PREFIX};

fn read_jsonl(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn bfcl_eval_against_supo_serve_with_summaries() {
    if !bfcl_available("bfcl_eval_against_supo_serve_with_summaries") {
        return;
    }
    let server = Server::start(&["--truncate-prompt", "--seed", "3"]);
    let policy = HttpPolicy::new(HttpConfig::new(&server.base_url, "supo-builtin")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Three entries with the same classes as the first (so their prompts have about the same
    // length), and their task prompts' lengths as the server tokenizes them.
    let entries = load_category("multi_turn_base").unwrap();
    let classes = entries[0].check.involved_classes.clone();
    let chosen: Vec<_> = entries
        .iter()
        .filter(|e| e.check.involved_classes == classes)
        .take(3)
        .cloned()
        .collect();
    assert_eq!(chosen.len(), 3);
    let mut prompt_lens = BTreeMap::new();
    for e in &chosen {
        let env = BfclEnv::new(e.clone()).unwrap();
        let messages = vec![
            ChatMessage::new("system", system_prompt(ToolFormat::Python, &env.tools())),
            ChatMessage::new("user", env.first_message()),
        ];
        let n = runtime
            .block_on(policy.tokenize_chat(&messages, &[], true))
            .unwrap()
            .len();
        prompt_lens.insert(e.id.clone(), n);
    }
    let longest = *prompt_lens.values().max().unwrap();
    let (w, l, max_tokens) = (longest + 200, longest + 40, 16);
    let prefix_ids: Vec<u64> = runtime
        .block_on(policy.tokenize_text(DEFAULT_SUMMARY_PREFIX))
        .unwrap()
        .into_iter()
        .map(u64::from)
        .collect();
    let instruction_ids: Vec<u64> = runtime
        .block_on(policy.tokenize_chat(
            &[ChatMessage::new("user", DEFAULT_SUMMARY_INSTRUCTION)],
            &[],
            true,
        ))
        .unwrap()
        .into_iter()
        .map(u64::from)
        .collect();

    let dir = std::env::temp_dir().join(format!("supo-agent-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (verdicts, rows) = (dir.join("verdicts.jsonl"), dir.join("batch.jsonl"));
    let id_list: Vec<&str> = chosen.iter().map(|e| e.id.as_str()).collect();
    let eval = |concurrency: &str, verdicts: &std::path::Path, rows: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_supo"))
            .args(["bfcl", "eval", "--base-url", &server.base_url])
            .args(["--model", "supo-builtin", "--category", "multi_turn_base"])
            .args(["--ids", &id_list.join(",")])
            .args([
                "--working-context",
                &w.to_string(),
                "--threshold",
                &l.to_string(),
            ])
            .args([
                "--max-summaries",
                "2",
                "--max-tokens",
                &max_tokens.to_string(),
            ])
            .args(["--tool-format", "python", "--temperature", "1.0"])
            .args(["--concurrency", concurrency])
            .arg("--output")
            .arg(verdicts)
            .arg("--export")
            .arg(rows)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("accuracy") && stdout.contains("rollouts/s"),
            "{stdout}"
        );
        eprintln!("{stdout}");
    };
    eval("3", &verdicts, &rows);
    // Each rollout has its own seeds: one at a time gives the same files.
    let (verdicts_1, rows_1) = (dir.join("verdicts-1.jsonl"), dir.join("batch-1.jsonl"));
    eval("1", &verdicts_1, &rows_1);
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    assert_eq!(read(&verdicts), read(&verdicts_1));
    assert_eq!(read(&rows), read(&rows_1));

    let verdicts = read_jsonl(&verdicts);
    let rows = read_jsonl(&rows);
    assert_eq!(
        verdicts
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        id_list
    );
    let mut total_summaries = 0;
    let mut row_iter = rows.iter();
    for (t, v) in verdicts.iter().enumerate() {
        let id = v["id"].as_str().unwrap();
        assert!(v["error"].is_null(), "{v}");
        // The reward is the checker's verdict.
        let valid = v["valid"].as_bool().unwrap();
        assert_eq!(v["reward"].as_f64().unwrap(), if valid { 1.0 } else { 0.0 });
        if !valid {
            assert!(
                v["error_type"].as_str().unwrap().starts_with("multi_turn:"),
                "{v}"
            );
        }
        // Every generation's working context, counted locally, is what the server fed the
        // model, and stays within W.
        for g in v["generations"].as_array().unwrap() {
            assert_eq!(g["context_tokens"], g["server_prompt_tokens"], "{id}: {g}");
            let end =
                g["context_tokens"].as_u64().unwrap() + g["completion_tokens"].as_u64().unwrap();
            assert!(end <= w as u64, "{id}: {g}");
        }
        assert!(v["peak_context"].as_u64().unwrap() <= w as u64);
        let summaries = v["summaries"].as_u64().unwrap() as usize;
        let summary_generations = v["generations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["summary"] == true)
            .count();
        assert!(summaries <= 2 && summaries <= summary_generations, "{v}");
        total_summaries += summaries;

        // One exported row per segment, in order, matching the verdict's segment sizes.
        let segments = v["segments"].as_u64().unwrap() as usize;
        let mine: Vec<&Value> = row_iter.by_ref().take(segments).collect();
        assert_eq!(mine.len(), segments);
        let first_prompt = ids(&mine[0]["prompt_ids"]);
        assert_eq!(first_prompt.len(), prompt_lens[id]);
        for (k, r) in mine.iter().enumerate() {
            assert_eq!(r["group"], id);
            assert_eq!(r["trajectory"], t);
            assert_eq!(r["segment"], k);
            assert_eq!(r["finish"], v["finish"]);
            assert_eq!(r["reward"], v["reward"]);
            let (prompt, response) = (ids(&r["prompt_ids"]), ids(&r["response_ids"]));
            assert_eq!(prompt.len() as u64, v["segment_prompt_tokens"][k]);
            assert_eq!(response.len() as u64, v["segment_response_tokens"][k]);
            let mask = ids(&r["agent_mask"]);
            let lps: Vec<f64> = r["old_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!((mask.len(), lps.len()), (response.len(), response.len()));
            for (m, lp) in mask.iter().zip(&lps) {
                assert!(if *m == 1 {
                    *lp <= 0.0 && lp.is_finite()
                } else {
                    *lp == 0.0
                });
            }
            // Overlong trajectories are masked out of the loss; the others train agent tokens.
            let overlong = ["MaxSteps", "MaxSummaries", "ContextOverflow"]
                .contains(&v["finish"].as_str().unwrap());
            let loss_mask = ids(&r["loss_mask"]);
            if overlong {
                assert!(loss_mask.iter().all(|&m| m == 0));
            } else {
                assert_eq!(loss_mask, mask);
            }
            // A single sample per group: the estimator's advantage is 0.
            assert_eq!(r["advantage"].as_f64().unwrap(), 0.0);
            // token-mean weights: the same positive weight on every trained token, 0 elsewhere.
            let weights: Vec<f64> = r["token_weights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(weights.len(), response.len());
            for (w, m) in weights.iter().zip(&loss_mask) {
                assert!(if *m == 1 {
                    *w > 0.0 && *w <= 1.0
                } else {
                    *w == 0.0
                });
            }
            // A segment closed by a summary ends with the instruction and the summary, and the
            // next segment's prompt is the task prompt ⊕ template ⊕ summary.
            if k + 1 < segments || !r["summary_ids"].is_null() {
                let summary = ids(&r["summary_ids"]);
                assert!(!summary.is_empty());
                assert!(response.ends_with(&summary));
                let before = &response[..response.len() - summary.len()];
                assert!(before.ends_with(&instruction_ids), "{id} segment {k}");
                assert!(mask[response.len() - summary.len()..]
                    .iter()
                    .all(|&m| m == 1));
                if k + 1 < segments {
                    let next = ids(&mine[k + 1]["prompt_ids"]);
                    let expected: Vec<u64> = first_prompt
                        .iter()
                        .chain(&prefix_ids)
                        .chain(&summary)
                        .copied()
                        .collect();
                    assert_eq!(next, expected, "{id} segment {}", k + 1);
                }
            }
        }
        let closed = mine.iter().filter(|r| !r["summary_ids"].is_null()).count();
        assert_eq!(closed, summaries, "{id}");
    }
    assert!(row_iter.next().is_none(), "rows left over");
    assert!(
        total_summaries >= 1,
        "the working context forced no summary"
    );
    eprintln!(
        "{} rollouts, {} rows, {total_summaries} summaries",
        verdicts.len(),
        rows.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rollout_exports_groups_and_failures_are_clear() {
    if !bfcl_available("rollout_exports_groups_and_failures_are_clear") {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = std::env::temp_dir().join(format!("supo-agent-rollout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out_path, rows_path) = (dir.join("rollouts.jsonl"), dir.join("batch.jsonl"));
    let supo = |base_url: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_supo"))
            .args(["rollout", "--base-url", base_url, "--model", "supo-builtin"])
            .args([
                "--ids",
                "multi_turn_base_0,multi_turn_base_1",
                "--samples",
                "2",
            ])
            .args([
                "--max-tokens",
                "8",
                "--tool-format",
                "hermes",
                "--temperature",
                "1.0",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = supo(
        &server.base_url,
        &[
            "--export",
            rows_path.to_str().unwrap(),
            "--output",
            out_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rollouts = read_jsonl(&out_path);
    let groups: Vec<(&str, u64)> = rollouts
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["sample"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("multi_turn_base_0", 0),
            ("multi_turn_base_0", 1),
            ("multi_turn_base_1", 0),
            ("multi_turn_base_1", 1)
        ]
    );
    let rows = read_jsonl(&rows_path);
    let segments: u64 = rollouts
        .iter()
        .map(|r| r["segments"].as_u64().unwrap())
        .sum();
    assert_eq!(rows.len() as u64, segments);
    for r in &rows {
        let t = r["trajectory"].as_u64().unwrap() as usize;
        assert_eq!(r["group"], rollouts[t]["id"]);
        assert_eq!(r["reward"], rollouts[t]["reward"]);
        assert!(r["advantage"].as_f64().unwrap().is_finite());
    }

    // Token ids from a local tokenizer.json (ChatML) instead of the server's /tokenize.
    let vocab: serde_json::Map<String, Value> = ["<|im_start|>", "<|im_end|>", "<unk>", "user"]
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i.into()))
        .collect();
    let added: Vec<Value> = ["<|im_start|>", "<|im_end|>"]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({"id": i, "content": w, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = dir.join("tokenizer.json");
    let json = serde_json::json!({"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added, "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}});
    std::fs::write(&tokenizer, json.to_string()).unwrap();
    let out = supo(
        &server.base_url,
        &[
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--output",
            out_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = supo_agent::local::LocalTokenizer::from_file(&tokenizer).unwrap();
    let entry = load_category("multi_turn_base").unwrap().remove(0);
    let env = BfclEnv::new(entry).unwrap();
    let task = vec![
        ChatMessage::new("system", system_prompt(ToolFormat::Hermes, &env.tools())),
        ChatMessage::new("user", env.first_message()),
    ];
    let expected = local.encode_chat(&task, &[], true).unwrap().len();
    let first = &read_jsonl(&out_path)[0];
    assert_eq!(first["segment_prompt_tokens"][0], expected);
    assert_eq!(first["generations"][0]["context_tokens"], expected);

    // With and without context management in one run.
    let verdicts = dir.join("compare.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args([
            "bfcl",
            "eval",
            "--base-url",
            &server.base_url,
            "--model",
            "supo-builtin",
        ])
        .args([
            "--ids",
            "multi_turn_base_0",
            "--max-tokens",
            "8",
            "--compare",
        ])
        .args([
            "--working-context",
            &(expected + 60).to_string(),
            "--max-summaries",
            "1",
        ])
        .arg("--output")
        .arg(&verdicts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("multi_turn_base"))
            .count(),
        2
    );
    let lines = read_jsonl(&verdicts);
    let label = format!("W={} S=1", expected + 60);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["context"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["none", label.as_str()]
    );
    assert_eq!(lines[0]["summaries"], 0);

    // Nothing to write, a category that does not exist, a server that is not there.
    let out = supo(&server.base_url, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to write"));
    let out = supo(
        &server.base_url,
        &[
            "--category",
            "multi_turn_nope",
            "--export",
            rows_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = supo(
        &format!("http://127.0.0.1:{port}/v1"),
        &["--retries", "0", "--export", rows_path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("every rollout failed") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
