//! BFCL's executor in Rust: instances of an entry's involved classes, call strings evaluated
//! against them and results rendered as the model sees them (`execute_multi_turn_func_call`),
//! and the replay of whole entries (`supo bfcl replay`).

use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::env::{tool_class, CallArgs, ToolClass, ToolEnv, ToolError};
use super::parse::{dict_insert, parse_expr, set_insert, Call, Expr};
use super::value::PyValue;

/// Classes the executor creates without loading a scenario.
const STATELESS_CLASSES: &[&str] = &["MathAPI"];

/// Method names the executor refuses to run.
const FORBIDDEN: &[&str] = &[
    "kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run",
];

/// The prefix of a rendered exception.
pub const ERROR_PREFIX: &str = "Error during execution: ";

/// The live instances of one entry's involved classes, kept across turns.
pub struct Executor {
    classes: Vec<&'static ToolClass>,
    envs: Vec<Box<dyn ToolEnv>>,
    /// Each instance's last state snapshot, dropped when one of its methods runs.
    snapshots: Vec<Option<Arc<serde_json::Value>>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.classes.iter().map(|c| c.name).collect();
        f.debug_struct("Executor").field("classes", &names).finish()
    }
}

impl Executor {
    /// Creates and loads the instances of `classes` from `initial_config` (each class's part,
    /// or an empty object). Fails on a class not implemented or a scenario that does not load.
    pub fn new(
        classes: &[String],
        initial_config: &serde_json::Value,
        long_context: bool,
    ) -> Result<Executor, String> {
        let empty = serde_json::Value::Object(serde_json::Map::new());
        let mut envs = Vec::with_capacity(classes.len());
        let mut kinds = Vec::with_capacity(classes.len());
        for class in classes {
            let kind = tool_class(class)
                .ok_or_else(|| format!("BFCL class {class} is not implemented"))?;
            let mut env = (kind.new)();
            if !STATELESS_CLASSES.contains(&class.as_str()) {
                let cfg = initial_config.get(class).unwrap_or(&empty);
                env.load_scenario(cfg, long_context)
                    .map_err(|e| format!("cannot load the {class} scenario: {e}"))?;
            }
            envs.push(env);
            kinds.push(kind);
        }
        let snapshots = vec![None; envs.len()];
        Ok(Executor {
            classes: kinds,
            envs,
            snapshots,
        })
    }

    /// Runs one call string and renders its result as BFCL's executor does: a `str` as is, a
    /// dict as `json.dumps` text (or `str()` when it holds a set), anything else as `str()`, an
    /// exception as `"Error during execution: …"`.
    pub fn execute(&mut self, call: &str) -> String {
        if let Some(name) = self.forbidden_name(call) {
            return format!("{ERROR_PREFIX}Function call {name} is not allowed.");
        }
        let result = parse_expr(call)
            .map_err(|e| ToolError(e.message))
            .and_then(|e| self.eval(e));
        match result {
            // A `str` result is the text itself: moved, not copied.
            Ok(PyValue::Str(s)) => s,
            Ok(v) => render(&v),
            Err(e) => format!("{ERROR_PREFIX}{}", e.0),
        }
    }

    /// The instances' public state: class name → state, in the entry's class order.
    pub fn states(&mut self) -> serde_json::Map<String, serde_json::Value> {
        self.snapshot()
            .into_iter()
            .map(|(class, state)| (class.to_string(), (*state).clone()))
            .collect()
    }

    /// The instances' states as shared snapshots (class name, state), in the entry's class
    /// order. An instance none of whose methods ran since the last snapshot is not asked
    /// again: its state can only change through its methods.
    pub fn snapshot(&mut self) -> Vec<(&'static str, Arc<serde_json::Value>)> {
        self.envs
            .iter()
            .zip(&self.classes)
            .zip(&mut self.snapshots)
            .map(|((env, class), cached)| {
                let state = cached.get_or_insert_with(|| Arc::new(env.state())).clone();
                (class.name, state)
            })
            .collect()
    }

    /// The instances, in the entry's class order.
    pub fn envs(&self) -> &[Box<dyn ToolEnv>] {
        &self.envs
    }

    /// The executor's forbidden-name rule on the call string with instance names prefixed:
    /// the text before the first `(`, then the part after its first `.`. The prefixed text is
    /// not built: the name is read off the call string around where the prefix would go.
    fn forbidden_name(&self, call: &str) -> Option<String> {
        let mut head = call.split('(').next().unwrap_or("");
        // The reference rewrites a name right before the `(` (spaces between them dropped),
        // prefixing `instance.` to a method name.
        let mut prefix_at = None;
        if call.contains('(') {
            let trimmed = head.trim_end();
            let ident_start = trimmed
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
                .last()
                .map(|(i, _)| i);
            if let Some(i) = ident_start {
                head = trimmed;
                let boundary_ok = trimmed[..i]
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                if boundary_ok && self.method_index(&trimmed[i..]).is_some() {
                    prefix_at = Some(i);
                }
            }
        }
        let forbidden = |name: &str| FORBIDDEN.contains(&name).then(|| name.to_string());
        let Some(i) = prefix_at else {
            return match head.split_once('.') {
                Some((_, rest)) => forbidden(rest.split('.').next().unwrap_or("")),
                None => forbidden(head),
            };
        };
        let (before, after) = head.split_at(i);
        match before.split_once('.') {
            // The first `.` is the prefix's: the name is the method and what follows it.
            None => forbidden(after.split('.').next().unwrap_or("")),
            Some((_, rest)) => match rest.split_once('.') {
                Some((name, _)) => forbidden(name),
                // The name runs into the prefix: `rest` followed by `instance`.
                None => FORBIDDEN
                    .iter()
                    .find(|f| f.strip_prefix(rest) == Some("instance"))
                    .map(|f| f.to_string()),
            },
        }
    }

    /// The instance whose class has method `name` (a later class wins, as in the reference,
    /// whose method map later classes overwrite). A scan of the few classes' static lists,
    /// cheaper than building a map for every entry.
    fn method_index(&self, name: &str) -> Option<usize> {
        self.classes
            .iter()
            .rposition(|c| c.functions.contains(&name))
    }

    /// Evaluates a parsed call string, moving its literals into the arguments.
    fn eval(&mut self, e: Expr) -> Result<PyValue, ToolError> {
        match e {
            Expr::Value(v) => Ok(v),
            Expr::Call(c) => self.call(*c),
            Expr::List(items) => Ok(PyValue::List(self.eval_all(items)?)),
            Expr::Tuple(items) => Ok(PyValue::Tuple(self.eval_all(items)?)),
            Expr::Set(items) => {
                let mut out = Vec::new();
                for v in self.eval_all(items)? {
                    set_insert(&mut out, v).map_err(ToolError)?;
                }
                Ok(PyValue::Set(out))
            }
            Expr::Dict(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let k = self.eval(k)?;
                    let v = self.eval(v)?;
                    dict_insert(&mut out, k, v).map_err(ToolError)?;
                }
                Ok(PyValue::Dict(out))
            }
        }
    }

    fn eval_all(&mut self, items: Vec<Expr>) -> Result<Vec<PyValue>, ToolError> {
        items.into_iter().map(|e| self.eval(e)).collect()
    }

    fn call(&mut self, c: Call) -> Result<PyValue, ToolError> {
        let first = c.name.split('.').next().unwrap_or("");
        let idx = match self.method_index(&c.name) {
            Some(i) if !c.name.contains('.') => i,
            _ => return Err(ToolError(format!("name '{first}' is not defined"))),
        };
        let mut args = CallArgs {
            positional: Vec::with_capacity(c.args.len()),
            keyword: Vec::with_capacity(c.kwargs.len()),
        };
        for a in c.args {
            args.positional.push(self.eval(a)?);
        }
        for (k, v) in c.kwargs {
            args.keyword.push((k, self.eval(v)?));
        }
        self.snapshots[idx] = None;
        self.envs[idx].call(&c.name, &args)
    }
}

/// Renders a function result as BFCL's executor does.
pub fn render(v: &PyValue) -> String {
    match v {
        PyValue::Str(s) => s.clone(),
        PyValue::Dict(_) if !holds_set(v) => v.json_dumps(),
        other => other.py_str(),
    }
}

/// Whether `json.dumps` would reject the value (it holds a set).
fn holds_set(v: &PyValue) -> bool {
    match v {
        PyValue::Set(_) => true,
        PyValue::List(items) | PyValue::Tuple(items) => items.iter().any(holds_set),
        PyValue::Dict(items) => items.iter().any(|(k, v)| holds_set(k) || holds_set(v)),
        _ => false,
    }
}

/// One input line of `supo bfcl replay`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayInput {
    /// The entry id (any JSON value, echoed back).
    pub id: serde_json::Value,
    /// The classes to instantiate, in order.
    pub involved_classes: Vec<String>,
    /// Each class's scenario, by class name.
    #[serde(default)]
    pub initial_config: serde_json::Value,
    /// Whether to load the long-context variants of the scenarios.
    #[serde(default)]
    pub long_context: bool,
    /// The call strings of each turn.
    pub turns: Vec<Vec<String>>,
}

/// One output line of `supo bfcl replay`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutput {
    /// The entry id.
    pub id: serde_json::Value,
    /// `results[t][k]`: the rendered result of call `k` of turn `t`.
    pub results: Vec<Vec<String>>,
    /// `states[t]`: each instance's public state after turn `t` (class name, state), shared
    /// between turns where it did not change.
    pub states: Vec<TurnStates>,
}

/// The instances' states after one turn, serialized as a JSON object `{Class: state}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnStates(pub Vec<(&'static str, Arc<serde_json::Value>)>);

impl TurnStates {
    /// The state of class `class`.
    pub fn get(&self, class: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(c, _)| *c == class).map(|(_, s)| &**s)
    }
}

impl Serialize for TurnStates {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (class, state) in &self.0 {
            map.serialize_entry(class, &**state)?;
        }
        map.end()
    }
}

/// Replays one entry turn by turn on fresh instances.
pub fn replay(input: &ReplayInput) -> Result<ReplayOutput, String> {
    let mut ex = Executor::new(
        &input.involved_classes,
        &input.initial_config,
        input.long_context,
    )?;
    let mut results = Vec::with_capacity(input.turns.len());
    let mut states = Vec::with_capacity(input.turns.len());
    for turn in &input.turns {
        results.push(turn.iter().map(|c| ex.execute(c)).collect());
        states.push(TurnStates(ex.snapshot()));
    }
    Ok(ReplayOutput {
        id: input.id.clone(),
        results,
        states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fs() -> Executor {
        let cfg = serde_json::json!({"GorillaFileSystem": {"root": {"ws": {"type": "directory",
            "contents": {"a.txt": {"type": "file", "content": "x\ny"}}}}}});
        Executor::new(&["GorillaFileSystem".to_string()], &cfg, false).unwrap()
    }

    #[test]
    fn renders_like_the_executor() {
        let mut ex = fs();
        assert_eq!(
            ex.execute("ls()"),
            "{\"current_directory_content\": [\"a.txt\"]}"
        );
        assert_eq!(ex.execute("mkdir(dir_name='d')"), "None");
        assert_eq!(
            ex.execute("nope()"),
            "Error during execution: name 'nope' is not defined"
        );
        assert_eq!(
            ex.execute("rm('a.txt')"),
            "{\"result\": \"'a.txt' removed\"}"
        );
        assert_eq!(
            ex.execute("kill(1)"),
            "Error during execution: Function call kill is not allowed."
        );
        // The forbidden-name rule reads the name after the first `.` of the call with
        // `instance.` put before a known method (results from BFCL's executor).
        for (call, expected) in [
            ("x.quit.ls()", "Function call quit is not allowed."),
            ("a.kill(1)", "Function call kill is not allowed."),
            ("run.ls()", "name 'run' is not defined"),
            ("ls.run()", "Function call run is not allowed."),
            ("kill ()", "Function call kill is not allowed."),
        ] {
            assert_eq!(
                ex.execute(call),
                format!("{ERROR_PREFIX}{expected}"),
                "{call}"
            );
        }
        assert!(ex.execute("cd(folder=").starts_with(ERROR_PREFIX));
        assert!(ex
            .execute("cd()")
            .contains("missing 1 required positional argument: 'folder'"));
    }

    proptest! {
        #[test]
        fn arbitrary_calls_never_panic(
            calls in prop::collection::vec(
                "(ls|cd|cat|mv|cp|rm|rmdir|mkdir|touch|echo|find|wc|sort|grep|du|tail|diff|pwd|\
                  mean|logarithm|power|round_number|square_root|max_value|si_unit_conversion|\
                  send_message|delete_message|add_contact|search_messages|message_login|\
                  post_tweet|mention|comment|retweet|get_tweet|search_tweets|follow_user)\\(\
                  (([a-z_]{1,8}=)?('[a-z./]{0,6}'|-?[0-9]{1,3}(\\.[0-9])?|True|None|\\[\\]|\
                  \\['a', 1\\]|\\{\\}|\\(1,\\)|ls\\(\\))(, )?){0,3}\\)",
                1..12,
            )
        ) {
            let cfg = serde_json::json!({"GorillaFileSystem": {"root": {"w": {"type": "directory",
                "contents": {"a": {"type": "directory", "contents": {}},
                             "f.txt": {"type": "file", "content": "x\ny"}}}}}});
            let classes: Vec<String> = ["GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI"]
                .iter()
                .map(|c| c.to_string())
                .collect();
            let mut ex = Executor::new(&classes, &cfg, false).unwrap();
            for c in &calls {
                let _ = ex.execute(c);
            }
            let _ = ex.states();
        }
    }
}
