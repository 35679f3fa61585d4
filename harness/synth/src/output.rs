//! The output folder of `supo synth`: four JSONL files written one sample at a time (a sample is
//! finished once its `chat.jsonl` line, written last, is complete), resumed by keeping the
//! finished samples and dropping a half-written one, and the statistics report, rebuilt from the
//! samples' metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::graph::{ApiGraph, EdgeKind};
use super::{sample_id, Sample};

/// The JSONL files, in the order a sample's lines are written (`chat.jsonl` last: a sample
/// counts as finished once its chat line is complete).
pub const FILES: [&str; 4] = [
    "bfcl_questions.jsonl",
    "bfcl_possible_answers.jsonl",
    "replay_input.jsonl",
    "chat.jsonl",
];

/// An output folder opened for appending.
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    files: Vec<File>,
    chats: Vec<Value>,
}

/// The complete lines of `text`, whose ids must be `funreason_mt_0, 1, …` (a complete line that
/// is not such a line is an error; a last line without its newline is ignored).
fn finished_lines(path: &Path, text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(nl) = rest.find('\n') {
        let line = &rest[..nl];
        let v: Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "{} line {}: not a synthesised sample ({e}); use another --out",
                path.display(),
                out.len() + 1
            )
        })?;
        if v["id"] != sample_id(out.len()) {
            return Err(format!(
                "{} line {}: id {} where {} was expected; use another --out",
                path.display(),
                out.len() + 1,
                v["id"],
                sample_id(out.len())
            ));
        }
        out.push(v);
        rest = &rest[nl + 1..];
    }
    Ok(out)
}

impl OutputDir {
    /// Opens (creating) `dir`: keeps the samples finished in every file, cuts off anything
    /// after them (a sample interrupted half-way), and returns the folder ready to append.
    pub fn open(dir: &Path) -> Result<OutputDir, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut parsed = Vec::new();
        for name in FILES {
            let path = dir.join(name);
            let text = match std::fs::read(&path) {
                Ok(bytes) => String::from_utf8(bytes)
                    .map_err(|_| format!("{} is not UTF-8; use another --out", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            };
            let lines = finished_lines(&path, &text)?;
            parsed.push((path, text, lines));
        }
        let finished = parsed.iter().map(|(_, _, l)| l.len()).min().unwrap_or(0);
        let mut files = Vec::new();
        let mut chats = Vec::new();
        for (path, text, lines) in parsed {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            // Everything after the finished samples (a sample cut half-way) goes.
            let cut = nth_line_end(&text, finished).unwrap_or(text.len());
            if cut < text.len() {
                f.set_len(cut as u64)
                    .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
            }
            if path.ends_with(FILES[FILES.len() - 1]) {
                chats = lines.into_iter().take(finished).collect();
            }
            files.push(f);
        }
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            files,
            chats,
        })
    }

    /// The `chat.jsonl` lines of the finished samples.
    pub fn finished(&self) -> &[Value] {
        &self.chats
    }

    /// Appends one sample (each line written whole and synced; the chat line last).
    pub fn append(&mut self, sample: Sample) -> Result<(), String> {
        let lines = [
            &sample.question,
            &sample.answer,
            &sample.replay,
            &sample.chat,
        ];
        for ((f, name), v) in self.files.iter_mut().zip(FILES).zip(lines) {
            let mut line = v.to_string();
            line.push('\n');
            f.write_all(line.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(|e| format!("cannot write {}: {e}", self.dir.join(name).display()))?;
        }
        self.chats.push(sample.chat);
        Ok(())
    }

    /// Writes `stats.json`, `graph.json` and `graph.dot` (atomically) for the samples so far.
    pub fn write_reports(&self, graph: &ApiGraph) -> Result<(), String> {
        let counts = edge_counts(graph, &self.chats);
        let write = |name: &str, text: String| {
            let path = self.dir.join(name);
            supo_core::fs::write_atomic(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let stats = stats(graph, &self.chats);
        write(
            "stats.json",
            serde_json::to_string_pretty(&stats).unwrap_or_default() + "\n",
        )?;
        write(
            "graph.json",
            serde_json::to_string_pretty(&graph.to_json(&counts)).unwrap_or_default() + "\n",
        )?;
        write("graph.dot", graph.to_dot(&counts))
    }
}

/// The byte offset just after the `n`-th newline of `text` (0 for `n = 0`).
fn nth_line_end(text: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    text.match_indices('\n').nth(n - 1).map(|(i, _)| i + 1)
}

/// How often the samples used each graph edge (from their metadata's `edges`).
fn edge_counts(graph: &ApiGraph, chats: &[Value]) -> BTreeMap<(usize, usize), usize> {
    let find = |id: &Value| {
        id.as_str()
            .and_then(|s| s.split_once('.'))
            .and_then(|(c, n)| graph.index(c, n))
    };
    let mut counts = BTreeMap::new();
    for c in chats {
        for e in c["metadata"]["edges"].as_array().into_iter().flatten() {
            if let (Some(a), Some(b)) = (find(&e[0]), find(&e[1])) {
                *counts.entry((a, b)).or_default() += 1;
            }
        }
    }
    counts
}

fn add_counts(into: &mut BTreeMap<String, u64>, v: &Value) {
    for (k, n) in v.as_object().into_iter().flatten() {
        *into.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
    }
}

/// The statistics report of a set of samples, from their metadata alone.
pub fn stats(graph: &ApiGraph, chats: &[Value]) -> Value {
    let mut turns = 0u64;
    let mut calls = 0u64;
    let mut rounds = 0u64;
    let mut depth_hist: BTreeMap<String, u64> = BTreeMap::new();
    let mut depth_sum = 0u64;
    let mut tools: BTreeSet<String> = BTreeSet::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    let mut rejections: BTreeMap<String, u64> = BTreeMap::new();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts: BTreeMap<String, u64> = BTreeMap::new();
    let mut variants: BTreeMap<String, u64> = BTreeMap::new();
    let mut modes: BTreeSet<String> = BTreeSet::new();
    let mut hints = 0u64;
    for c in chats {
        let m = &c["metadata"];
        modes.insert(m["mode"].as_str().unwrap_or("?").to_string());
        turns += m["turns"].as_u64().unwrap_or(0);
        calls += m["calls"].as_u64().unwrap_or(0);
        let d = m["max_depth"].as_u64().unwrap_or(0);
        depth_sum += d;
        *depth_hist.entry(d.to_string()).or_default() += 1;
        for t in m["tools_called"].as_array().into_iter().flatten() {
            tools.insert(t.as_str().unwrap_or("").to_string());
        }
        for e in m["edges"].as_array().into_iter().flatten() {
            let name = |v: &Value| v.as_str().unwrap_or("").to_string();
            edges.insert((name(&e[0]), name(&e[1])));
        }
        add_counts(&mut rejections, &m["rejections"]);
        add_counts(&mut requests, &m["role_requests"]);
        for r in m["rounds"].as_array().into_iter().flatten() {
            rounds += 1;
            *attempts.entry(r["attempts"].to_string()).or_default() += 1;
            hints += r["hints"].as_array().map_or(0, |h| h.len() as u64);
            let v = match &r["variant"] {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
                _ => "?".to_string(),
            };
            *variants.entry(v).or_default() += 1;
        }
    }
    let all: BTreeSet<String> = graph
        .tools()
        .iter()
        .map(|t| format!("{}.{}", t.class, t.name))
        .collect();
    let data_edges: BTreeSet<(String, String)> = graph
        .edges()
        .iter()
        .filter(|e| e.kind == EdgeKind::Data)
        .map(|e| {
            let n = |i: usize| {
                let t = &graph.tools()[i];
                format!("{}.{}", t.class, t.name)
            };
            (n(e.from), n(e.to))
        })
        .collect();
    let n = chats.len().max(1) as f64;
    json!({
        "mode": modes.into_iter().collect::<Vec<_>>().join(","),
        "options": chats.first().map_or(Value::Null, |c| c["metadata"]["options"].clone()),
        "samples": chats.len(),
        "turns": turns,
        "rounds": rounds,
        "calls": calls,
        "calls_per_turn": (calls as f64 / turns.max(1) as f64 * 1000.0).round() / 1000.0,
        "variants": variants,
        "dependency_depth": {
            "mean_max_per_sample": (depth_sum as f64 / n * 1000.0).round() / 1000.0,
            "max": depth_hist.keys().filter_map(|k| k.parse::<u64>().ok()).max().unwrap_or(0),
            "histogram_of_sample_max": depth_hist,
        },
        "tools": {
            "covered": tools.len(),
            "total": all.len(),
            "never_called": all.difference(&tools).collect::<Vec<_>>(),
        },
        "edges": {
            "observed_distinct": edges.len(),
            "graph_edges": graph.edges().len(),
            "graph_data_edges": data_edges.len(),
            "graph_data_edges_covered": edges.intersection(&data_edges).count(),
        },
        "rejections": rejections,
        "llm": {
            "role_requests": requests,
            "reasoning_attempts_per_round": attempts,
            "critic_hints": hints,
        },
    })
}
