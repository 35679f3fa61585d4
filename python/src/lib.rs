//! `supo._native`: the Rust half of the `supo` Python package (its typed, documented face is
//! `python/supo/__init__.py` and `_native.pyi`).
//!
//! What is bound: the working-context rule (`ContextConfig`, `TrajectoryBuilder` from
//! `supo-core`), the estimator on token-id trajectories (`estimate`), the `supo loss`
//! contract (`loss_json`, parsed by the core's `estimator::contract`, exactly what the
//! command-line tool computes) and `supo-bfcl`'s environments and checker (`BfclExecutor`,
//! `bfcl_check`, `bfcl_replay`, `bfcl_tool_docs`). Every error is a `SupoError` (a
//! `ValueError`); computations release the GIL.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use supo_core::context::{
    ContextConfig as CoreContextConfig, Decision as CoreDecision, TrajectoryBuilder as CoreBuilder,
};
use supo_core::estimator::contract::{ContractConfig, ContractInput};
use supo_core::estimator::{EstimatorConfig, TrainingBatch};
use supo_core::{FinishReason, Role, SummarySegment, Trajectory as CoreTrajectory, Turn};

create_exception!(
    _native,
    SupoError,
    PyValueError,
    "Bad input or configuration reported by supo's Rust code."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    SupoError::new_err(e.to_string())
}

fn finish_reason(name: &str) -> PyResult<FinishReason> {
    FinishReason::parse(name).map_err(err)
}

/// The working-context rule's limits and texts (paper §4): `W`, `L`, `S`, `H`, `v_sum` and the
/// rebuilt prompt's prefix.
#[pyclass(module = "supo._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct ContextConfig {
    inner: CoreContextConfig,
}

#[pymethods]
impl ContextConfig {
    #[new]
    #[pyo3(signature = (working_context, *, threshold=None, max_summaries=None, max_steps=None,
                        summary_instruction=None, summary_prefix=None))]
    fn new(
        working_context: usize,
        threshold: Option<usize>,
        max_summaries: Option<usize>,
        max_steps: Option<usize>,
        summary_instruction: Option<String>,
        summary_prefix: Option<String>,
    ) -> PyResult<Self> {
        let mut c = CoreContextConfig::new(working_context);
        if let Some(l) = threshold {
            c.threshold = l;
        }
        if let Some(s) = max_summaries {
            c.max_summaries = s;
        }
        if let Some(h) = max_steps {
            c.max_steps = h;
        }
        if let Some(t) = summary_instruction {
            c.summary_instruction = t;
        }
        if let Some(t) = summary_prefix {
            c.summary_prefix = t;
        }
        c.validate().map_err(err)?;
        Ok(ContextConfig { inner: c })
    }

    /// `W`.
    #[getter]
    fn working_context(&self) -> usize {
        self.inner.working_context
    }
    /// `L`.
    #[getter]
    fn threshold(&self) -> usize {
        self.inner.threshold
    }
    /// `S`.
    #[getter]
    fn max_summaries(&self) -> usize {
        self.inner.max_summaries
    }
    /// `H`.
    #[getter]
    fn max_steps(&self) -> usize {
        self.inner.max_steps
    }
    /// `v_sum`.
    #[getter]
    fn summary_instruction(&self) -> &str {
        &self.inner.summary_instruction
    }
    /// The text between the task prompt and the summary.
    #[getter]
    fn summary_prefix(&self) -> &str {
        &self.inner.summary_prefix
    }

    fn __repr__(&self) -> String {
        format!(
            "ContextConfig(working_context={}, threshold={}, max_summaries={}, max_steps={})",
            self.inner.working_context,
            self.inner.threshold,
            self.inner.max_summaries,
            self.inner.max_steps
        )
    }
}

/// What the caller does next: `kind` is `"Continue"`, `"Summarize"` or `"Stop"` (then `reason`
/// is the finish reason's name).
#[pyclass(module = "supo._native", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct Decision {
    /// `"Continue"`, `"Summarize"` or `"Stop"`.
    #[pyo3(get)]
    kind: &'static str,
    /// The finish reason of a `"Stop"`.
    #[pyo3(get)]
    reason: Option<&'static str>,
}

impl From<CoreDecision> for Decision {
    fn from(d: CoreDecision) -> Self {
        match d {
            CoreDecision::Continue => Decision {
                kind: "Continue",
                reason: None,
            },
            CoreDecision::Summarize => Decision {
                kind: "Summarize",
                reason: None,
            },
            CoreDecision::Stop(r) => Decision {
                kind: "Stop",
                reason: Some(r.name()),
            },
        }
    }
}

#[pymethods]
impl Decision {
    fn __repr__(&self) -> String {
        match self.reason {
            Some(r) => format!("Stop({r})"),
            None => self.kind.to_string(),
        }
    }
}

/// One summary segment: prompt `c_k` and response `y_k` with its agent mask and log-probs.
#[pyclass(module = "supo._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct Segment {
    inner: SummarySegment,
}

#[pymethods]
impl Segment {
    /// A segment from flat arrays: runs of `mask` 1 are agent turns (with `logprobs`), runs of
    /// 0 tool turns; `summary` (start, end) marks the agent run holding the closing summary.
    #[new]
    #[pyo3(signature = (prompt, response, mask, logprobs, summary=None))]
    fn new(
        prompt: Vec<u32>,
        response: Vec<u32>,
        mask: Vec<u8>,
        logprobs: Vec<f32>,
        summary: Option<(usize, usize)>,
    ) -> PyResult<Self> {
        if mask.len() != response.len() || logprobs.len() != response.len() {
            return Err(err(format!(
                "response has {} tokens but mask {} and logprobs {}",
                response.len(),
                mask.len(),
                logprobs.len()
            )));
        }
        if let Some(i) = mask.iter().position(|&m| m > 1) {
            return Err(err(format!("mask[{i}] is {}, not 0 or 1", mask[i])));
        }
        let mut turns: Vec<Turn> = Vec::new();
        let mut summary_turn = None;
        let mut start = 0;
        while start < response.len() {
            let agent = mask[start] == 1;
            let mut end = start;
            while end < response.len()
                && mask[end] == mask[start]
                && !(agent && summary.is_some_and(|(s, _)| s == end && end != start))
            {
                end += 1;
            }
            let tokens = response[start..end].to_vec();
            if agent {
                if summary == Some((start, end)) {
                    summary_turn = Some(turns.len());
                }
                turns.push(Turn::agent(tokens, logprobs[start..end].to_vec()));
            } else {
                turns.push(Turn::other(Role::Tool, tokens));
            }
            start = end;
        }
        if summary.is_some() && summary_turn.is_none() {
            return Err(err(format!(
                "summary {summary:?} is not a whole run of agent tokens"
            )));
        }
        let inner = SummarySegment {
            prompt,
            turns,
            summary_turn,
        };
        inner.validate().map_err(err)?;
        Ok(Segment { inner })
    }

    /// `c_k` (uint32).
    #[getter]
    fn prompt<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_slice(py, &self.inner.prompt)
    }
    /// `y_k` (uint32).
    #[getter]
    fn response<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_vec(py, self.inner.response())
    }
    /// 1 on agent tokens of `y_k`, 0 on observations and instructions (uint8).
    #[getter]
    fn mask<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_vec(py, self.inner.agent_mask())
    }
    /// `log π_old` per response token, 0 on non-agent tokens (float32).
    #[getter]
    fn logprobs<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.inner.old_logprobs())
    }
    /// The summary tokens that close the segment, or `None`.
    #[getter]
    fn summary(&self) -> Option<Vec<u32>> {
        self.inner.summary().map(<[u32]>::to_vec)
    }
    /// The roles and token counts of the response's turns, in order.
    #[getter]
    fn turns(&self) -> Vec<(String, usize)> {
        self.inner
            .turns
            .iter()
            .map(|t| (format!("{:?}", t.role).to_lowercase(), t.tokens.len()))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.response_len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Segment(prompt={} tokens, response={} tokens, summary={})",
            self.inner.prompt.len(),
            self.inner.response_len(),
            self.inner.summary_turn.is_some()
        )
    }
}

/// A whole episode: group, reward, finish reason and segments.
#[pyclass(module = "supo._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct Trajectory {
    inner: CoreTrajectory,
}

#[pymethods]
impl Trajectory {
    #[new]
    fn new(group: String, reward: f64, finish: &str, segments: Vec<Segment>) -> PyResult<Self> {
        let inner = CoreTrajectory {
            group,
            reward,
            finish: finish_reason(finish)?,
            segments: segments.into_iter().map(|s| s.inner).collect(),
        };
        inner.validate().map_err(err)?;
        Ok(Trajectory { inner })
    }

    /// The task (group) id.
    #[getter]
    fn group(&self) -> &str {
        &self.inner.group
    }
    /// The reward.
    #[getter]
    fn reward(&self) -> f64 {
        self.inner.reward
    }
    /// The finish reason's name.
    #[getter]
    fn finish(&self) -> &'static str {
        self.inner.finish.name()
    }
    /// Whether it ended without an answer within the limits (overlong).
    #[getter]
    fn overlong(&self) -> bool {
        self.inner.finish.is_overlong()
    }
    /// The segments.
    #[getter]
    fn segments(&self) -> Vec<Segment> {
        self.inner
            .segments
            .iter()
            .map(|s| Segment { inner: s.clone() })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Trajectory(group={:?}, reward={}, finish={}, segments={})",
            self.inner.group,
            self.inner.reward,
            self.inner.finish.name(),
            self.inner.segments.len()
        )
    }
}

/// Drives the working-context rule with real token ids and assembles the `Trajectory`.
#[pyclass(module = "supo._native")]
pub struct TrajectoryBuilder {
    inner: Option<CoreBuilder>,
}

impl TrajectoryBuilder {
    fn live(&self) -> PyResult<&CoreBuilder> {
        self.inner
            .as_ref()
            .ok_or_else(|| err("the trajectory was already finished"))
    }
    fn live_mut(&mut self) -> PyResult<&mut CoreBuilder> {
        self.inner
            .as_mut()
            .ok_or_else(|| err("the trajectory was already finished"))
    }
}

#[pymethods]
impl TrajectoryBuilder {
    /// Starts an episode on `task_prompt`; `instruction` and `prefix` are the token ids of the
    /// config's summarization instruction and of the rebuilt prompt's prefix.
    #[new]
    fn new(
        config: &ContextConfig,
        task_prompt: Vec<u32>,
        instruction: Vec<u32>,
        prefix: Vec<u32>,
    ) -> PyResult<Self> {
        let b = CoreBuilder::new(config.inner.clone(), task_prompt, instruction, prefix)
            .map_err(err)?;
        Ok(TrajectoryBuilder { inner: Some(b) })
    }

    /// Records an action (agent tokens and their log-probs) and the observation's tokens.
    fn push_step(
        &mut self,
        action: Vec<u32>,
        logprobs: Vec<f32>,
        observation: Vec<u32>,
    ) -> PyResult<Decision> {
        let d = self
            .live_mut()?
            .push_step(
                Turn::agent(action, logprobs),
                Turn::other(Role::Tool, observation),
            )
            .map_err(err)?;
        Ok(d.into())
    }

    /// Records the final answer.
    fn push_answer(&mut self, action: Vec<u32>, logprobs: Vec<f32>) -> PyResult<Decision> {
        let d = self
            .live_mut()?
            .push_answer(Turn::agent(action, logprobs))
            .map_err(err)?;
        Ok(d.into())
    }

    /// Records the summary asked for by a `"Summarize"` decision; closes the segment.
    fn push_summary(&mut self, summary: Vec<u32>, logprobs: Vec<f32>) -> PyResult<Decision> {
        let d = self
            .live_mut()?
            .push_summary(Turn::agent(summary, logprobs))
            .map_err(err)?;
        Ok(d.into())
    }

    /// The token ids the policy sees now (the segment's prompt and its response so far).
    fn context(&self) -> PyResult<Vec<u32>> {
        Ok(self.live()?.context())
    }

    /// Tokens in the working context now.
    #[getter]
    fn context_len(&self) -> PyResult<usize> {
        Ok(self.live()?.manager().context_len())
    }
    /// The most tokens the next generation may have before it overflows `W`.
    #[getter]
    fn generation_budget(&self) -> PyResult<usize> {
        Ok(self.live()?.manager().generation_budget())
    }
    /// Agent steps taken.
    #[getter]
    fn steps(&self) -> PyResult<usize> {
        Ok(self.live()?.manager().steps())
    }
    /// Summaries written.
    #[getter]
    fn summaries(&self) -> PyResult<usize> {
        Ok(self.live()?.manager().summaries())
    }
    /// Whether a summary is expected next.
    #[getter]
    fn awaiting_summary(&self) -> PyResult<bool> {
        Ok(self.live()?.manager().awaiting_summary())
    }
    /// The finish reason once the episode is over, else `None`.
    #[getter]
    fn finished(&self) -> PyResult<Option<&'static str>> {
        Ok(self.live()?.manager().finished().map(FinishReason::name))
    }

    /// Ends the episode with its reward (`finish` defaults to the rule's finish reason); the
    /// builder cannot be used afterwards.
    #[pyo3(signature = (group, reward, finish=None))]
    fn finish(&mut self, group: String, reward: f64, finish: Option<&str>) -> PyResult<Trajectory> {
        let finish = finish.map(finish_reason).transpose()?;
        let b = self
            .inner
            .take()
            .ok_or_else(|| err("the trajectory was already finished"))?;
        let t = b.finish(group, reward, finish).map_err(err)?;
        t.validate().map_err(err)?;
        Ok(Trajectory { inner: t })
    }
}

/// Parses the contract's `config` object (JSON text; `None` for the defaults).
fn estimator_config(config_json: Option<&str>) -> PyResult<(EstimatorConfig, Vec<String>)> {
    let Some(text) = config_json else {
        return Ok((EstimatorConfig::default(), Vec::new()));
    };
    let c: ContractConfig =
        serde_json::from_str(text).map_err(|e| err(format!("bad config JSON: {e}")))?;
    let ignored = c.ignored_fields().into_iter().map(String::from).collect();
    Ok((c.into_config().map_err(err)?, ignored))
}

/// The estimator on token-id trajectories: one row per segment (padded with zero-weight rows
/// to a multiple of `micro_batch`), Eq. 3 advantages, overlong masks and aggregation weights.
#[pyfunction]
#[pyo3(signature = (trajectories, config_json=None, micro_batch=None))]
fn estimate<'py>(
    py: Python<'py>,
    trajectories: Vec<Trajectory>,
    config_json: Option<&str>,
    micro_batch: Option<usize>,
) -> PyResult<(Bound<'py, PyDict>, Vec<String>)> {
    let (config, ignored) = estimator_config(config_json)?;
    let trajs: Vec<CoreTrajectory> = trajectories.into_iter().map(|t| t.inner).collect();
    let batch = py
        .detach(|| {
            config.validate()?;
            let mut b = TrainingBatch::new(&trajs, &config)?;
            if let Some(m) = micro_batch {
                b.pad_to_multiple(m, &config)?;
            }
            Ok::<_, supo_core::Error>(b)
        })
        .map_err(err)?;
    let d = PyDict::new(py);
    let row_traj: Vec<i64> = batch
        .rows
        .iter()
        .map(|r| r.trajectory.map_or(-1, |i| i as i64))
        .collect();
    let row_len: Vec<i64> = batch.rows.iter().map(|r| r.response.len() as i64).collect();
    let mask: Vec<u8> = batch
        .rows
        .iter()
        .flat_map(|r| r.mask.iter().copied())
        .collect();
    d.set_item("advantages", PyArray1::from_vec(py, batch.advantages))?;
    d.set_item("row_trajectory", PyArray1::from_vec(py, row_traj))?;
    d.set_item("row_length", PyArray1::from_vec(py, row_len))?;
    d.set_item("targets", PyArray1::from_vec(py, batch.targets))?;
    d.set_item("old_logprobs", PyArray1::from_vec(py, batch.old_logprobs))?;
    d.set_item(
        "token_advantages",
        PyArray1::from_vec(py, batch.token_advantages),
    )?;
    d.set_item("mask", PyArray1::from_vec(py, mask))?;
    d.set_item("weights", PyArray1::from_vec(py, batch.weights))?;
    Ok((d, ignored))
}

/// The `supo loss` contract on a JSON document: its output as a dict, and the names of
/// ignored config fields.
#[pyfunction]
fn loss_json<'py>(py: Python<'py>, text: &str) -> PyResult<(Bound<'py, PyDict>, Vec<String>)> {
    let text = text.to_owned();
    let (out, ignored) = py
        .detach(|| {
            let input: ContractInput = serde_json::from_str(&text)
                .map_err(|e| supo_core::Error::InvalidInput(format!("bad batch JSON: {e}")))?;
            let ignored: Vec<String> = input
                .ignored_fields()
                .into_iter()
                .map(String::from)
                .collect();
            let (batch, config) = input.into_batch()?;
            Ok::<_, supo_core::Error>((batch.loss(&config)?, ignored))
        })
        .map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("advantages", out.advantages)?;
    d.set_item("loss", out.loss)?;
    d.set_item("pg_loss", out.pg_loss)?;
    d.set_item("kl_loss", out.kl_loss)?;
    d.set_item("clipfrac", out.clipfrac)?;
    d.set_item("clipfrac_lower", out.clipfrac_lower)?;
    d.set_item("approx_kl", out.approx_kl)?;
    d.set_item("grad_logp", out.grad_logp)?;
    Ok((d, ignored))
}

/// Group advantages (Eq. 3) over rewards and group ids, float64 in and out.
#[pyfunction]
#[pyo3(signature = (rewards, groups, masked, config_json=None))]
fn group_advantages<'py>(
    py: Python<'py>,
    rewards: PyReadonlyArray1<'py, f64>,
    groups: Vec<String>,
    masked: Vec<bool>,
    config_json: Option<&str>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (config, _) = estimator_config(config_json)?;
    let rewards = rewards.as_slice().map_err(err)?.to_vec();
    if groups.len() != rewards.len() || masked.len() != rewards.len() {
        return Err(err(format!(
            "{} rewards but {} groups and {} masks",
            rewards.len(),
            groups.len(),
            masked.len()
        )));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(err(format!("reward {i} is not finite")));
    }
    let adv = py
        .detach(|| {
            let ids: Vec<&str> = groups.iter().map(String::as_str).collect();
            let ones = vec![1; rewards.len()];
            supo_core::estimator::batch::trajectory_advantages(
                &rewards,
                &ids,
                &masked,
                &ones,
                &config.advantage,
            )
        })
        .map_err(err)?;
    Ok(PyArray1::from_vec(py, adv))
}

/// The live instances of one BFCL entry's classes, kept across calls.
#[pyclass(module = "supo._native", unsendable)]
pub struct BfclExecutor {
    inner: supo_bfcl::replay::Executor,
}

#[pymethods]
impl BfclExecutor {
    /// Loads `involved_classes` from `initial_config` (JSON text).
    #[new]
    #[pyo3(signature = (involved_classes, initial_config_json, long_context=false))]
    fn new(
        involved_classes: Vec<String>,
        initial_config_json: &str,
        long_context: bool,
    ) -> PyResult<Self> {
        let cfg: serde_json::Value = serde_json::from_str(initial_config_json)
            .map_err(|e| err(format!("bad initial_config JSON: {e}")))?;
        let inner =
            supo_bfcl::replay::Executor::new(&involved_classes, &cfg, long_context).map_err(err)?;
        Ok(BfclExecutor { inner })
    }

    /// Runs one call string; BFCL's result text (an exception as `"Error during execution: …"`).
    fn execute(&mut self, call: &str) -> String {
        self.inner.execute(call)
    }

    /// Each instance's public state, as JSON text.
    fn states_json(&mut self) -> String {
        serde_json::Value::Object(self.inner.states()).to_string()
    }
}

/// BFCL's multi-turn checker on one entry (JSON text of `{id, involved_classes,
/// initial_config}`), the ground truth's calls per turn and the model's decoded steps per turn;
/// the verdict as JSON text.
#[pyfunction]
fn bfcl_check(
    py: Python<'_>,
    entry_json: &str,
    ground_truth: Vec<Vec<String>>,
    model: Vec<Vec<Vec<String>>>,
) -> PyResult<String> {
    let entry: supo_bfcl::checker::CheckEntry =
        serde_json::from_str(entry_json).map_err(|e| err(format!("bad entry JSON: {e}")))?;
    let verdict = py
        .detach(|| supo_bfcl::checker::check_entry(&entry, &ground_truth, &model))
        .map_err(err)?;
    serde_json::to_string(&verdict).map_err(err)
}

/// `supo bfcl replay` on one input line (JSON text); its output line as JSON text.
#[pyfunction]
fn bfcl_replay(py: Python<'_>, input_json: &str) -> PyResult<String> {
    let input: supo_bfcl::replay::ReplayInput =
        serde_json::from_str(input_json).map_err(|e| err(format!("bad replay JSON: {e}")))?;
    let out = py
        .detach(|| supo_bfcl::replay::replay(&input))
        .map_err(err)?;
    serde_json::to_string(&out).map_err(err)
}

/// The tool docs an entry's model sees (from the installed `bfcl-eval`): `(docs, added per
/// turn)` as JSON text.
#[pyfunction]
fn bfcl_tool_docs(classes: Vec<String>, missed_function_json: &str) -> PyResult<String> {
    let missed: serde_json::Value = serde_json::from_str(missed_function_json)
        .map_err(|e| err(format!("bad missed_function JSON: {e}")))?;
    let (docs, added) = supo_bfcl::checker::tool_docs(&classes, &missed).map_err(err)?;
    Ok(serde_json::json!({"docs": docs, "added": added}).to_string())
}

/// The BFCL classes implemented here: `{name: [function names]}`.
#[pyfunction]
fn bfcl_classes() -> Vec<(&'static str, Vec<&'static str>)> {
    supo_bfcl::apis::CLASSES
        .iter()
        .map(|c| (c.name, c.functions.to_vec()))
        .collect()
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SupoError", m.py().get_type::<SupoError>())?;
    m.add_class::<ContextConfig>()?;
    m.add_class::<Decision>()?;
    m.add_class::<Segment>()?;
    m.add_class::<Trajectory>()?;
    m.add_class::<TrajectoryBuilder>()?;
    m.add_class::<BfclExecutor>()?;
    m.add_function(wrap_pyfunction!(estimate, m)?)?;
    m.add_function(wrap_pyfunction!(loss_json, m)?)?;
    m.add_function(wrap_pyfunction!(group_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(bfcl_check, m)?)?;
    m.add_function(wrap_pyfunction!(bfcl_replay, m)?)?;
    m.add_function(wrap_pyfunction!(bfcl_tool_docs, m)?)?;
    m.add_function(wrap_pyfunction!(bfcl_classes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
