//! The working-context rule of SUPO (paper §4, Algorithm 2), driven by the caller.
//!
//! The agent acts while, after an (action, observation) pair, its working context stays below
//! the threshold `L` (default `0.95·W`). When a pair brings it to `L` or more:
//!
//! * that pair is **discarded** (never kept in the context, never trained), so the summary is
//!   never squeezed by a long observation and the context stays within `L + |v_sum| + L_A`;
//! * if fewer than `S` summaries were made, the summarization instruction `v_sum` is appended and
//!   the agent's next output is a summary; the next segment's prompt is the task prompt followed
//!   by the summary in the template ([`ContextConfig::summary_prefix`]);
//! * otherwise the episode stops with [`FinishReason::MaxSummaries`].
//!
//! The episode also stops after `H` agent steps ([`FinishReason::MaxSteps`]), when a single
//! generation cannot fit in `W` ([`FinishReason::ContextOverflow`]) and on a final answer.
//!
//! [`ContextManager`] works on token counts and does no I/O; [`TrajectoryBuilder`] drives it with
//! real tokens and assembles the [`Trajectory`] with its [`SummarySegment`]s.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::trajectory::{FinishReason, Role, SummarySegment, TokenId, Trajectory, Turn};

/// The paper's default summarization instruction `v_sum`.
pub const DEFAULT_SUMMARY_INSTRUCTION: &str = "Your working context is almost full. \
Summarize the progress so far: the facts you have found, the actions you have taken and \
their results, and what remains to be done. Keep every detail that is needed to finish the \
task. Write the summary inside <summary></summary> and do not call any tool.";

/// The paper's template that introduces the summary in the rebuilt prompt.
pub const DEFAULT_SUMMARY_PREFIX: &str =
    "\n\n...We are in the following stage of solving the problem:\n";

/// Counts tokens of a text; implement it for a real tokenizer.
pub trait TokenCounter {
    /// Number of tokens `text` encodes to.
    fn count(&self, text: &str) -> usize;
}

/// A tokenizer-free counter: one token per whitespace-separated word.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// Limits and texts of the working-context rule.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContextConfig {
    /// `W`: the model's working context in tokens.
    pub working_context: usize,
    /// `L`: a pair that brings the context to `L` or more triggers a summary.
    pub threshold: usize,
    /// `S`: the most summaries per episode.
    pub max_summaries: usize,
    /// `H`: the most agent steps per episode.
    pub max_steps: usize,
    /// `v_sum`, the summarization instruction.
    pub summary_instruction: String,
    /// The text between the task prompt and the summary in a rebuilt prompt.
    pub summary_prefix: String,
}

impl ContextConfig {
    /// `W` tokens with the paper's defaults: `L = ⌊0.95·W⌋`, `S = 7`, `H = 100`.
    pub fn new(working_context: usize) -> Self {
        ContextConfig {
            working_context,
            threshold: working_context * 95 / 100,
            max_summaries: 7,
            max_steps: 100,
            summary_instruction: DEFAULT_SUMMARY_INSTRUCTION.into(),
            summary_prefix: DEFAULT_SUMMARY_PREFIX.into(),
        }
    }

    /// Sets `S`.
    pub fn with_max_summaries(mut self, s: usize) -> Self {
        self.max_summaries = s;
        self
    }

    /// Sets `H`.
    pub fn with_max_steps(mut self, h: usize) -> Self {
        self.max_steps = h;
        self
    }

    /// Sets `L`.
    pub fn with_threshold(mut self, l: usize) -> Self {
        self.threshold = l;
        self
    }

    /// Checks `0 < L ≤ W` and `H > 0`.
    pub fn validate(&self) -> Result<()> {
        if self.working_context == 0 || self.threshold == 0 || self.threshold > self.working_context
        {
            return Err(Error::InvalidConfig(alloc::format!(
                "need 0 < threshold ({}) <= working_context ({})",
                self.threshold,
                self.working_context
            )));
        }
        if self.max_steps == 0 {
            return Err(Error::InvalidConfig("max_steps must be > 0".into()));
        }
        Ok(())
    }

    /// The next segment's prompt as text: `task_prompt ⊕ prefix ⊕ summary`.
    pub fn rebuild_prompt(&self, task_prompt: &str, summary: &str) -> String {
        let mut s =
            String::with_capacity(task_prompt.len() + self.summary_prefix.len() + summary.len());
        s.push_str(task_prompt);
        s.push_str(&self.summary_prefix);
        s.push_str(summary);
        s
    }

    /// The bound on the working context the rule guarantees: `L + |v_sum| + L_A`, where
    /// `max_generation` is the longest single generation `L_A` and `instruction_len = |v_sum|`.
    pub fn context_bound(&self, instruction_len: usize, max_generation: usize) -> usize {
        self.threshold + instruction_len + max_generation
    }
}

/// Extracts the text inside the last `<summary>…</summary>` of a generation (or after an
/// unclosed `<summary>`); `None` when there is no summary tag.
pub fn extract_summary(generation: &str) -> Option<&str> {
    let start = generation.rfind("<summary>")? + "<summary>".len();
    let rest = &generation[start..];
    Some(
        rest.find("</summary>")
            .map_or(rest, |end| &rest[..end])
            .trim(),
    )
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep acting in the current context.
    Continue,
    /// The last pair was discarded: append the summarization instruction and generate a summary.
    Summarize,
    /// The episode is over.
    Stop(FinishReason),
}

/// The working-context state machine on token counts.
#[derive(Debug, Clone)]
pub struct ContextManager {
    config: ContextConfig,
    instruction_len: usize,
    context: usize,
    steps: usize,
    summaries: usize,
    peak: usize,
    awaiting_summary: bool,
    last_pair_kept: bool,
    finished: Option<FinishReason>,
}

impl ContextManager {
    /// Starts an episode whose task prompt has `prompt_len` tokens; `instruction_len` is
    /// `|v_sum|` in tokens.
    pub fn new(config: ContextConfig, prompt_len: usize, instruction_len: usize) -> Result<Self> {
        config.validate()?;
        let mut m = ContextManager {
            config,
            instruction_len,
            context: prompt_len,
            steps: 0,
            summaries: 0,
            peak: prompt_len,
            awaiting_summary: false,
            last_pair_kept: false,
            finished: None,
        };
        if prompt_len >= m.config.threshold {
            m.finished = Some(FinishReason::ContextOverflow);
        }
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &ContextConfig {
        &self.config
    }

    /// Tokens now in the working context (prompt and kept pairs; plus `v_sum` while a summary
    /// is awaited).
    pub fn context_len(&self) -> usize {
        self.context
            + if self.awaiting_summary {
                self.instruction_len
            } else {
                0
            }
    }

    /// The most tokens the next generation may have before it overflows `W`.
    pub fn generation_budget(&self) -> usize {
        self.config
            .working_context
            .saturating_sub(self.context_len())
    }

    /// The largest working context seen so far, generations included.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Agent steps taken (actions, discarded ones included).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Summaries written.
    pub fn summaries(&self) -> usize {
        self.summaries
    }

    /// Whether a summary is expected next.
    pub fn awaiting_summary(&self) -> bool {
        self.awaiting_summary
    }

    /// Whether the pair of the last [`ContextManager::on_step`] was kept in the context.
    pub fn last_pair_kept(&self) -> bool {
        self.last_pair_kept
    }

    /// The finish reason once the episode is over.
    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    fn expect_action(&self) -> Result<()> {
        if let Some(r) = self.finished {
            return Err(Error::InvalidInput(alloc::format!(
                "the episode is over ({r:?})"
            )));
        }
        if self.awaiting_summary {
            return Err(Error::InvalidInput(
                "a summary is expected, not an action".into(),
            ));
        }
        Ok(())
    }

    fn stop(&mut self, reason: FinishReason) -> Decision {
        self.finished = Some(reason);
        Decision::Stop(reason)
    }

    /// The agent produced its final answer of `action_len` tokens.
    pub fn on_answer(&mut self, action_len: usize) -> Result<Decision> {
        self.expect_action()?;
        self.steps += 1;
        if self.context + action_len > self.config.working_context {
            return Ok(self.stop(FinishReason::ContextOverflow));
        }
        self.peak = self.peak.max(self.context + action_len);
        Ok(self.stop(FinishReason::Answered))
    }

    /// The agent took an action of `action_len` tokens and the environment answered with
    /// `observation_len` tokens.
    pub fn on_step(&mut self, action_len: usize, observation_len: usize) -> Result<Decision> {
        self.expect_action()?;
        self.steps += 1;
        self.last_pair_kept = false;
        if self.context + action_len > self.config.working_context {
            return Ok(self.stop(FinishReason::ContextOverflow));
        }
        self.peak = self.peak.max(self.context + action_len);
        let grown = self.context + action_len + observation_len;
        if grown < self.config.threshold {
            self.context = grown;
            self.last_pair_kept = true;
            self.peak = self.peak.max(grown);
            if self.steps >= self.config.max_steps {
                return Ok(self.stop(FinishReason::MaxSteps));
            }
            return Ok(Decision::Continue);
        }
        // The pair is discarded: the context stays as it was before the action.
        if self.steps >= self.config.max_steps {
            return Ok(self.stop(FinishReason::MaxSteps));
        }
        if self.summaries >= self.config.max_summaries {
            return Ok(self.stop(FinishReason::MaxSummaries));
        }
        self.awaiting_summary = true;
        self.peak = self.peak.max(self.context_len());
        Ok(Decision::Summarize)
    }

    /// The agent wrote a summary of `summary_len` tokens; the next segment's prompt
    /// (task prompt ⊕ template ⊕ summary) has `next_prompt_len` tokens.
    pub fn on_summary(&mut self, summary_len: usize, next_prompt_len: usize) -> Result<Decision> {
        if !self.awaiting_summary || self.finished.is_some() {
            return Err(Error::InvalidInput("no summary was asked for".into()));
        }
        let during = self.context_len() + summary_len;
        self.awaiting_summary = false;
        if during > self.config.working_context {
            return Ok(self.stop(FinishReason::ContextOverflow));
        }
        self.peak = self.peak.max(during);
        self.summaries += 1;
        self.context = next_prompt_len;
        if next_prompt_len >= self.config.threshold {
            return Ok(self.stop(FinishReason::ContextOverflow));
        }
        self.peak = self.peak.max(next_prompt_len);
        Ok(Decision::Continue)
    }
}

/// Drives a [`ContextManager`] with real tokens and assembles the [`Trajectory`].
///
/// Kept pairs go into the current segment's response; a discarded pair goes nowhere; on
/// [`Decision::Summarize`] the instruction tokens are appended (as a user turn), the summary
/// (an agent turn) closes the segment, and the next segment starts with the rebuilt prompt.
///
/// ```
/// use supo_core::context::{ContextConfig, Decision, TrajectoryBuilder};
/// use supo_core::estimator::{EstimatorConfig, TrainingBatch};
/// use supo_core::{FinishReason, Role, Turn};
/// # fn main() -> Result<(), supo_core::Error> {
/// let config = ContextConfig::new(12).with_max_summaries(1);
/// let mut episode = TrajectoryBuilder::new(config, vec![1, 2, 3], vec![4], vec![5])?;
/// let step = |n| (Turn::agent(vec![7; n], vec![-0.5; n]), Turn::other(Role::Tool, vec![9; 3]));
/// let (a, o) = step(2);
/// assert_eq!(episode.push_step(a, o)?, Decision::Continue); // 3 + 2 + 3 = 8 < L = 11
/// let (a, o) = step(2);
/// assert_eq!(episode.push_step(a, o)?, Decision::Summarize); // 13 >= 11: pair discarded
/// let summary = Turn::agent(vec![8, 8], vec![-0.1, -0.2]);
/// assert_eq!(episode.push_summary(summary)?, Decision::Continue);
/// assert_eq!(episode.context(), vec![1, 2, 3, 5, 8, 8]); // p ⊕ prefix ⊕ summary
/// let trajectory = episode.finish("task".into(), 1.0, Some(FinishReason::Answered))?;
/// assert_eq!(trajectory.segments.len(), 1);
/// let batch = TrainingBatch::new(&[trajectory], &EstimatorConfig::default())?;
/// assert_eq!(batch.rows.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TrajectoryBuilder {
    manager: ContextManager,
    task_prompt: Vec<TokenId>,
    instruction: Vec<TokenId>,
    prefix: Vec<TokenId>,
    segments: Vec<SummarySegment>,
    current: SummarySegment,
}

impl TrajectoryBuilder {
    /// Starts an episode on `task_prompt`; `instruction` and `prefix` are the tokens of
    /// [`ContextConfig::summary_instruction`] and [`ContextConfig::summary_prefix`].
    pub fn new(
        config: ContextConfig,
        task_prompt: Vec<TokenId>,
        instruction: Vec<TokenId>,
        prefix: Vec<TokenId>,
    ) -> Result<Self> {
        let manager = ContextManager::new(config, task_prompt.len(), instruction.len())?;
        let current = SummarySegment {
            prompt: task_prompt.clone(),
            ..Default::default()
        };
        Ok(TrajectoryBuilder {
            manager,
            task_prompt,
            instruction,
            prefix,
            segments: Vec::new(),
            current,
        })
    }

    /// The state machine.
    pub fn manager(&self) -> &ContextManager {
        &self.manager
    }

    /// The tokens the policy sees now: the segment's prompt and its response so far.
    pub fn context(&self) -> Vec<TokenId> {
        let mut c = self.current.prompt.clone();
        c.extend(
            self.current
                .turns
                .iter()
                .flat_map(|t| t.tokens.iter().copied()),
        );
        c
    }

    /// Records an action and its observation.
    pub fn push_step(&mut self, action: Turn, observation: Turn) -> Result<Decision> {
        check_agent(&action)?;
        let d = self
            .manager
            .on_step(action.tokens.len(), observation.tokens.len())?;
        if self.manager.last_pair_kept() {
            self.current.turns.push(action);
            self.current.turns.push(observation);
        }
        if d == Decision::Summarize {
            self.current
                .turns
                .push(Turn::other(Role::User, self.instruction.clone()));
        }
        Ok(d)
    }

    /// Records the final answer (kept unless it overflowed the context).
    pub fn push_answer(&mut self, action: Turn) -> Result<Decision> {
        check_agent(&action)?;
        let d = self.manager.on_answer(action.tokens.len())?;
        if d == Decision::Stop(FinishReason::Answered) {
            self.current.turns.push(action);
        }
        Ok(d)
    }

    /// Records the summary asked for by [`Decision::Summarize`]; closes the segment.
    pub fn push_summary(&mut self, summary: Turn) -> Result<Decision> {
        check_agent(&summary)?;
        let mut next_prompt = self.task_prompt.clone();
        next_prompt.extend(&self.prefix);
        next_prompt.extend(&summary.tokens);
        let before = self.manager.summaries();
        let d = self
            .manager
            .on_summary(summary.tokens.len(), next_prompt.len())?;
        if self.manager.summaries() == before {
            // The summary itself did not fit in the working context: it is not kept.
            return Ok(d);
        }
        self.current.summary_turn = Some(self.current.turns.len());
        self.current.turns.push(summary);
        let closed = core::mem::replace(
            &mut self.current,
            SummarySegment {
                prompt: next_prompt,
                ..Default::default()
            },
        );
        self.segments.push(closed);
        Ok(d)
    }

    /// Ends the episode with its reward; `finish` defaults to the manager's finish reason.
    pub fn finish(
        mut self,
        group: String,
        reward: f64,
        finish: Option<FinishReason>,
    ) -> Result<Trajectory> {
        let finish = finish.or(self.manager.finished()).ok_or_else(|| {
            Error::InvalidInput("the episode has not finished; pass a finish reason".into())
        })?;
        if !self.current.turns.is_empty() || self.segments.is_empty() {
            self.segments.push(self.current);
        }
        Ok(Trajectory {
            group,
            reward,
            finish,
            segments: self.segments,
        })
    }
}

fn check_agent(turn: &Turn) -> Result<()> {
    if turn.role != Role::Assistant {
        return Err(Error::InvalidInput(alloc::format!(
            "expected an assistant turn, got {:?}",
            turn.role
        )));
    }
    Ok(())
}

/// Drives a [`ContextManager`] with text, counting tokens with a [`TokenCounter`] (a real
/// tokenizer, or [`WordCounter`]); keeps the current segment's prompt text for the caller.
#[derive(Debug, Clone)]
pub struct TextContext<C: TokenCounter> {
    manager: ContextManager,
    counter: C,
    task_prompt: String,
    prompt: String,
}

impl<C: TokenCounter> TextContext<C> {
    /// Starts an episode on `task_prompt`.
    pub fn new(config: ContextConfig, counter: C, task_prompt: &str) -> Result<Self> {
        let instruction = counter.count(&config.summary_instruction);
        let manager = ContextManager::new(config, counter.count(task_prompt), instruction)?;
        Ok(TextContext {
            manager,
            counter,
            task_prompt: task_prompt.into(),
            prompt: task_prompt.into(),
        })
    }

    /// The state machine.
    pub fn manager(&self) -> &ContextManager {
        &self.manager
    }

    /// The current segment's prompt: the task prompt, or the rebuilt prompt after a summary.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Records an action and its observation.
    pub fn on_step(&mut self, action: &str, observation: &str) -> Result<Decision> {
        self.manager
            .on_step(self.counter.count(action), self.counter.count(observation))
    }

    /// Records the final answer.
    pub fn on_answer(&mut self, action: &str) -> Result<Decision> {
        self.manager.on_answer(self.counter.count(action))
    }

    /// Records the summary (the text inside `<summary>…</summary>`) and rebuilds the prompt.
    pub fn on_summary(&mut self, summary: &str) -> Result<Decision> {
        let next = self
            .manager
            .config()
            .rebuild_prompt(&self.task_prompt, summary);
        let d = self
            .manager
            .on_summary(self.counter.count(summary), self.counter.count(&next))?;
        if self.manager.finished().is_none() {
            self.prompt = next;
        }
        Ok(d)
    }
}
