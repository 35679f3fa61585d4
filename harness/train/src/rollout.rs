//! Episodes of the ledger task under a working-context rule, by the built-in model or by the
//! demonstrator that writes the supervised warm-start data.
//!
//! One loop serves every arm: the [`ContextConfig`] decides whether the agent summarizes
//! (SUPO: `L < W`, `S > 0`) or stops when the context is full (GRPO: `L = W`, `S = 0`), and
//! `supo_core`'s [`TrajectoryBuilder`] cuts the episode into summary segments.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use supo_core::context::{ContextConfig, Decision, TrajectoryBuilder};
use supo_core::{FinishReason, Role, SummarySegment, Trajectory, Turn};

use crate::builtin::{sample, KvCache, Transformer};
use crate::ledger::{token, LedgerTask, LedgerVocab, Step};

/// Facts the demonstrator copies into a summary.
pub const SUMMARY_FACTS: usize = 3;

/// The working-context rule and generation limits of an episode.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeRules {
    /// `W`, `L`, `S`, `H`.
    pub context: ContextConfig,
    /// The most tokens of one action (`<eom>` included).
    pub action_cap: usize,
    /// The most tokens of one summary (`<eom>` included).
    pub summary_cap: usize,
}

impl EpisodeRules {
    /// SUPO: summarize when a pair would bring the context to `threshold`; at most
    /// `max_summaries` summaries. Actions and summaries get the lengths the ledger needs
    /// (an answer of every queried fact; progress and three facts).
    pub fn supo(
        working_context: usize,
        threshold: usize,
        max_summaries: usize,
        max_steps: usize,
    ) -> EpisodeRules {
        let mut context = ContextConfig::new(working_context)
            .with_threshold(threshold)
            .with_max_summaries(max_summaries)
            .with_max_steps(max_steps);
        context.summary_instruction = "<summarize>".into();
        context.summary_prefix = "<summary>".into();
        EpisodeRules {
            context,
            action_cap: 6,
            summary_cap: 2 + 2 * SUMMARY_FACTS,
        }
    }

    /// Plain GRPO: no summaries; the episode ends when the context is full.
    pub fn no_summaries(working_context: usize, max_steps: usize) -> EpisodeRules {
        Self::supo(working_context, working_context, 0, max_steps)
    }

    /// The longest generation, `L_A`.
    pub fn max_generation(&self) -> usize {
        self.action_cap.max(self.summary_cap)
    }

    /// The bound `L + |v_sum| + L_A` on the working context (`|v_sum|` is one token).
    pub fn context_bound(&self) -> usize {
        self.context.context_bound(1, self.max_generation())
    }
}

/// Who acts in an episode.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The model, sampling at `temperature` (0: greedy).
    Model {
        /// The network.
        model: &'a Transformer,
        /// Softmax temperature.
        temperature: f32,
    },
    /// The demonstrator: follows the ledger page by page, answers from what it sees (guessing a
    /// value it cannot see), and summarizes the page to read next plus facts chosen **uniformly
    /// at random** from the context — the format of a summary, never which facts matter.
    Demonstrator,
}

/// A finished episode and what the report needs from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// The trajectory, cut into summary segments.
    pub trajectory: Trajectory,
    /// Summaries written.
    pub summaries: usize,
    /// The largest working context.
    pub peak_context: usize,
    /// What the episode counted as it went.
    pub counts: EpisodeCounts,
}

impl Episode {
    /// Whether every queried fact was answered right.
    pub fn success(&self) -> bool {
        self.trajectory.reward == 1.0
    }
}

/// What [`run_episode`] counts as it goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeCounts {
    /// `read` calls made.
    pub tool_calls: usize,
    /// Σ over generations of the working context right after it, and the number of
    /// generations: their ratio is the mean working context.
    pub context_sum: usize,
    /// Generations (actions and summaries).
    pub generations: usize,
    /// Σ over summaries of the queried facts visible when it was written.
    pub facts_visible: usize,
    /// Σ over summaries of those facts the summary kept.
    pub facts_kept: usize,
    /// Each action whose pair was discarded (it crossed the threshold), as a one-turn segment
    /// on the context it was taken in. Not part of the trajectory — SUPO never trains on it —
    /// but the warm start learns from the demonstrator's that reading goes on when the
    /// context is full.
    pub discarded: Vec<SummarySegment>,
}

/// The model's side of an episode: a KV cache kept in step with the context.
struct ModelState<'a> {
    model: &'a Transformer,
    temperature: f32,
    cache: KvCache,
    logits: Vec<f32>,
}

impl ModelState<'_> {
    /// Brings the cache to `context` (reusing the longest common prefix); the logits are then
    /// those of the next token.
    fn sync(&mut self, context: &[u32]) -> Result<(), String> {
        let cached = self.cache.tokens();
        let common = cached
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count();
        if common == context.len() && common == cached.len() && common > 0 {
            return Ok(());
        }
        let keep = common.min(context.len().saturating_sub(1));
        self.cache.truncate(keep);
        self.model
            .extend(&mut self.cache, &context[keep..], &mut self.logits)
            .map_err(|e| e.0)
    }

    fn generate(
        &mut self,
        context: &[u32],
        cap: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Turn, String> {
        self.sync(context)?;
        let (mut tokens, mut logprobs) = (Vec::new(), Vec::new());
        while tokens.len() < cap {
            let (tok, lp) = sample(&self.logits, self.temperature, rng);
            tokens.push(tok);
            logprobs.push(lp);
            if tok == token::EOM || tokens.len() == cap {
                break;
            }
            self.model
                .extend(&mut self.cache, &[tok], &mut self.logits)
                .map_err(|e| e.0)?;
        }
        Ok(Turn::agent(tokens, logprobs))
    }
}

/// The page to read next according to `context`: the pointer that ends the last observation
/// in it, else the progress at the head of the summary, else the prompt's first page; `None`
/// once `end` was read.
fn next_page(vocab: &LedgerVocab, task: &LedgerTask, context: &[u32]) -> Option<usize> {
    let mut next = context
        .get(1 + task.query.len())
        .and_then(|&t| vocab.page_of(t));
    for w in context.windows(2) {
        let pointer = w[1] == token::END || vocab.page_of(w[1]).is_some();
        if pointer && (w[0] == token::SUMMARY || vocab.value_of(w[0]).is_some()) {
            next = vocab.page_of(w[1]);
        }
    }
    next
}

fn demonstrate(
    vocab: &LedgerVocab,
    task: &LedgerTask,
    context: &[u32],
    summary: bool,
    rng: &mut ChaCha8Rng,
) -> Turn {
    let visible = vocab.facts_in(context);
    let next = next_page(vocab, task, context);
    let mut tokens = Vec::new();
    if summary {
        tokens.push(next.map_or(token::END, |p| vocab.page(p)));
        let mut facts = visible.clone();
        facts.sort_unstable();
        facts.dedup();
        facts.shuffle(rng);
        tokens.extend(
            facts
                .into_iter()
                .take(SUMMARY_FACTS)
                .flat_map(|(k, v)| vocab.fact(k, v)),
        );
    } else if let Some(p) = next {
        tokens.extend([token::READ, vocab.page(p)]);
    } else {
        tokens.push(token::ANSWER);
        for &k in &task.query {
            let seen = visible.iter().find(|f| f.0 == k).map(|f| f.1);
            let v = seen.unwrap_or_else(|| rng.random_range(0..vocab.config().values));
            tokens.extend(vocab.fact(k, v));
        }
    }
    tokens.push(token::EOM);
    let n = tokens.len();
    Turn::agent(tokens, vec![0.0; n])
}

/// Runs one episode of `task` under `rules`; `seed` drives all sampling.
pub fn run_episode(
    vocab: &LedgerVocab,
    task: &LedgerTask,
    rules: &EpisodeRules,
    actor: Actor<'_>,
    seed: u64,
) -> Result<Episode, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = match actor {
        Actor::Model { model, temperature } => Some(ModelState {
            model,
            temperature,
            cache: model.new_cache(),
            logits: vec![0.0; model.config().vocab],
        }),
        Actor::Demonstrator => None,
    };
    let mut builder = TrajectoryBuilder::new(
        rules.context.clone(),
        task.prompt(vocab),
        vec![token::SUMMARIZE],
        vec![token::SUMMARY],
    )
    .map_err(|e| e.to_string())?;
    let queried = task.queried_facts();
    let mut ep = EpisodeCounts::default();
    let mut reward = 0.0;
    while builder.manager().finished().is_none() {
        let context = builder.context();
        let summarizing = builder.manager().awaiting_summary();
        let cap = if summarizing {
            rules.summary_cap
        } else {
            rules.action_cap
        };
        let turn = match model.as_mut() {
            Some(m) => m.generate(&context, cap, &mut rng)?,
            None => demonstrate(vocab, task, &context, summarizing, &mut rng),
        };
        ep.generations += 1;
        ep.context_sum += context.len() + turn.tokens.len();
        if summarizing {
            let (visible, kept) = (vocab.facts_in(&context), vocab.facts_in(&turn.tokens));
            let seen: Vec<_> = queried.iter().filter(|f| visible.contains(f)).collect();
            ep.facts_visible += seen.len();
            ep.facts_kept += seen.iter().filter(|f| kept.contains(f)).count();
            builder.push_summary(turn).map_err(|e| e.to_string())?;
            continue;
        }
        let body = turn.tokens.strip_suffix(&[token::EOM]);
        match body.map(|b| task.step(vocab, b)) {
            Some(Step::Answer(r)) => {
                if builder.push_answer(turn).map_err(|e| e.to_string())?
                    == Decision::Stop(FinishReason::Answered)
                {
                    reward = r;
                }
            }
            step => {
                if body.is_some_and(|b| b.first() == Some(&token::READ)) {
                    ep.tool_calls += 1;
                }
                let obs = match step {
                    Some(Step::Observation(o)) => o,
                    _ => vec![token::ERROR, token::EOM],
                };
                let action = turn.clone();
                let d = builder
                    .push_step(turn, Turn::other(Role::Tool, obs))
                    .map_err(|e| e.to_string())?;
                if d == Decision::Summarize {
                    ep.discarded.push(SummarySegment {
                        prompt: context,
                        turns: vec![action],
                        summary_turn: None,
                    });
                }
            }
        }
    }
    let (summaries, peak_context) = (builder.manager().summaries(), builder.manager().peak());
    Ok(Episode {
        trajectory: builder
            .finish(task.id.clone(), reward, None)
            .map_err(|e| e.to_string())?,
        summaries,
        peak_context,
        counts: ep,
    })
}

/// Runs `(task, seed)` jobs in parallel; results in job order.
pub fn run_episodes(
    vocab: &LedgerVocab,
    jobs: &[(&LedgerTask, u64)],
    rules: &EpisodeRules,
    actor: Actor<'_>,
) -> Result<Vec<Episode>, String> {
    jobs.par_iter()
        .map(|&(task, seed)| run_episode(vocab, task, rules, actor, seed))
        .collect()
}

/// Aggregates of a set of episodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct EpisodeStats {
    /// Share of successful episodes.
    pub success: f64,
    /// Mean reward.
    pub reward: f64,
    /// Mean working context over all generations.
    pub mean_working_context: f64,
    /// The largest working context of any episode.
    pub peak_working_context: usize,
    /// Mean summaries per episode.
    pub summaries_per_episode: f64,
    /// Mean `read` calls per episode.
    pub tool_calls_per_episode: f64,
    /// Share of the queried facts visible at summary time that summaries kept (`None`
    /// without summaries).
    pub facts_kept: Option<f64>,
}

impl EpisodeStats {
    /// The statistics of `episodes`.
    pub fn of(episodes: &[Episode]) -> EpisodeStats {
        let n = episodes.len().max(1) as f64;
        let sum = |f: fn(&Episode) -> f64| episodes.iter().map(f).sum::<f64>();
        let generations: usize = episodes.iter().map(|e| e.counts.generations).sum();
        let visible: usize = episodes.iter().map(|e| e.counts.facts_visible).sum();
        let kept: usize = episodes.iter().map(|e| e.counts.facts_kept).sum();
        EpisodeStats {
            success: sum(|e| e.success() as u8 as f64) / n,
            reward: sum(|e| e.trajectory.reward) / n,
            mean_working_context: episodes.iter().map(|e| e.counts.context_sum).sum::<usize>()
                as f64
                / generations.max(1) as f64,
            peak_working_context: episodes.iter().map(|e| e.peak_context).max().unwrap_or(0),
            summaries_per_episode: sum(|e| e.summaries as f64) / n,
            tool_calls_per_episode: sum(|e| e.counts.tool_calls as f64) / n,
            facts_kept: (visible > 0).then(|| kept as f64 / visible as f64),
        }
    }
}
