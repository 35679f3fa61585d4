//! The rollout loop on real BFCL environments, driven by the oracle agent — a policy that
//! answers each user turn with that turn's ground-truth calls (BFCL's Python syntax), then a
//! plain-text answer, and writes a short summary when asked — with token ids from a real
//! `supo serve`. BFCL's checker must pass every entry, with and without a working context small
//! enough to force summaries, and the trajectories must follow SUPO's segment structure.

mod agent_common;

use std::cell::RefCell;
use std::future::Future;

use agent_common::{bfcl_available, Server};
use serde_json::Value;
use supo_agent::bfcl::{load_category, BfclEntry, BfclEnv};
use supo_agent::http::{
    ChatMessage, ChatRequest, Completion, CompletionFinish, HttpConfig, HttpPolicy, PolicyError,
};
use supo_agent::{rollout, AgentConfig, Policy, ToolFormat};
use supo_core::context::{ContextConfig, DEFAULT_SUMMARY_INSTRUCTION};
use supo_core::FinishReason;

/// The ground-truth agent of one entry; tokenization is the real server's.
struct Oracle {
    server: HttpPolicy,
    truth: Vec<Vec<String>>,
    /// (turn, whether its calls were made).
    state: RefCell<(usize, bool)>,
}

impl Oracle {
    fn text(&self, req: &ChatRequest) -> String {
        let last = req.messages.last().map(|m| m.content.as_str());
        if last == Some(DEFAULT_SUMMARY_INSTRUCTION) {
            return "<summary> the calls of the turns so far are made </summary>".into();
        }
        let mut state = self.state.borrow_mut();
        let (turn, called) = *state;
        match self.truth.get(turn) {
            Some(calls) if !called && !calls.is_empty() => {
                state.1 = true;
                format!("[{}]", calls.join(", "))
            }
            _ => {
                *state = (turn + 1, false);
                "The task is done.".into()
            }
        }
    }
}

impl Policy for Oracle {
    fn complete(&self, req: &ChatRequest) -> impl Future<Output = Result<Completion, PolicyError>> {
        let text = self.text(req);
        async move {
            Ok(Completion {
                text,
                tool_calls: Vec::new(),
                token_ids: None,
                logprobs: None,
                finish: CompletionFinish::Stop,
                usage: None,
            })
        }
    }

    fn tokenize_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        add_generation_prompt: bool,
    ) -> impl Future<Output = Result<Vec<u32>, PolicyError>> {
        self.server
            .tokenize_chat(messages, tools, add_generation_prompt)
    }

    fn tokenize_text(&self, text: &str) -> impl Future<Output = Result<Vec<u32>, PolicyError>> {
        self.server.tokenize_text(text)
    }
}

/// The ids of the summary instruction as a user message, as the server tokenizes it.
async fn instruction_tokens(server: &Server) -> Vec<u32> {
    HttpPolicy::new(HttpConfig::new(&server.base_url, "supo-builtin"))
        .unwrap()
        .tokenize_chat(
            &[ChatMessage::new("user", DEFAULT_SUMMARY_INSTRUCTION)],
            &[],
            true,
        )
        .await
        .unwrap()
}

fn config(context: ContextConfig) -> AgentConfig {
    AgentConfig {
        context,
        max_tokens: 64,
        temperature: 0.0,
        tool_format: ToolFormat::Python,
        max_steps_per_turn: 20,
    }
}

#[test]
fn the_oracle_passes_bfcl_with_and_without_summaries() {
    if !bfcl_available("the_oracle_passes_bfcl_with_and_without_summaries") {
        return;
    }
    let server = Server::start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let entries: Vec<BfclEntry> = load_category("multi_turn_base")
        .unwrap()
        .into_iter()
        .take(8)
        .collect();
    let mut summaries = 0;
    for entry in &entries {
        let truth_calls: usize = entry.ground_truth.iter().map(Vec::len).sum();
        let run = |context: ContextConfig| {
            let oracle = Oracle {
                server: HttpPolicy::new(HttpConfig::new(&server.base_url, "supo-builtin")).unwrap(),
                truth: entry.ground_truth.clone(),
                state: RefCell::new((0, false)),
            };
            let mut env = BfclEnv::new(entry.clone()).unwrap();
            let r = runtime
                .block_on(rollout(&oracle, &mut env, &config(context), &entry.id, 0))
                .unwrap();
            (r, env.record().to_vec())
        };

        // No context management: one segment, every call made, the checker passes.
        let unlimited = 1 << 30;
        let (r, record) = run(ContextConfig::new(unlimited)
            .with_threshold(unlimited)
            .with_max_summaries(0));
        assert_eq!(r.outcome.reward, 1.0, "{}: {}", entry.id, r.outcome.verdict);
        assert_eq!(r.trajectory.finish, FinishReason::Answered);
        assert_eq!(r.trajectory.segments.len(), 1);
        assert_eq!(r.tool_calls, truth_calls);
        assert_eq!(record.len(), entry.ground_truth.len());
        assert!(!r.has_logprobs);
        let full_context = r.peak_context;
        let prompt = r.trajectory.segments[0].prompt.len();

        // A working context of the prompt and a few hundred tokens: summaries, same verdict.
        let w = prompt + 400;
        let (r, _) = run(ContextConfig::new(w)
            .with_threshold(prompt + 150)
            .with_max_summaries(20));
        assert_eq!(r.outcome.reward, 1.0, "{}: {}", entry.id, r.outcome.verdict);
        assert_eq!(r.tool_calls, truth_calls);
        assert!(r.peak_context <= w);
        if r.trajectory.summaries() > 0 {
            // The rule's bound L + |v_sum| + L_A, with the instruction as the server tokenizes it.
            let instruction = runtime.block_on(instruction_tokens(&server)).len();
            let bound = ContextConfig::new(w)
                .with_threshold(prompt + 150)
                .context_bound(instruction, 64);
            assert!(r.peak_context <= bound.min(full_context.max(w)));
        }
        r.trajectory.validate().unwrap();
        let t = &r.trajectory;
        assert_eq!(
            t.summaries() + usize::from(t.segments.last().unwrap().summary_turn.is_none()),
            t.segments.len()
        );
        for s in &t.segments[1..] {
            assert_eq!(&s.prompt[..prompt], &t.segments[0].prompt[..]);
        }
        summaries += t.summaries();
    }
    assert!(summaries > 0, "no entry needed a summary");
    eprintln!(
        "{} entries, {summaries} summaries, all passed",
        entries.len()
    );
}
