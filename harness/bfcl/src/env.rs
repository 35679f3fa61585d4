//! The tool-environment abstraction shared by the eight BFCL multi-turn APIs: call arguments,
//! Python's argument binding, tool errors, the [`ToolEnv`] trait and the class registry.

use std::borrow::Cow;

use super::value::PyValue;

/// The arguments of one call, as written in the call string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallArgs {
    /// Positional arguments, in order.
    pub positional: Vec<PyValue>,
    /// Keyword arguments, in the order written (duplicates kept; binding rejects them).
    pub keyword: Vec<(String, PyValue)>,
}

/// A Python exception raised by a tool function, holding the text BFCL's executor renders after
/// `"Error during execution: "` (that is, `str(exception)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl ToolError {
    /// An error with the given text.
    pub fn new(msg: impl Into<String>) -> ToolError {
        ToolError(msg.into())
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

/// A method's qualified name as CPython's messages write it (`GorillaFileSystem.mv`), kept as
/// its two parts so that a call that binds without error formats nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodName<'a> {
    /// The class name (`"GorillaFileSystem"`).
    pub class: &'a str,
    /// The method name (`"mv"`).
    pub func: &'a str,
}

impl<'a> MethodName<'a> {
    /// The name `class.func`.
    pub fn new(class: &'a str, func: &'a str) -> MethodName<'a> {
        MethodName { class, func }
    }
}

impl std::fmt::Display for MethodName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.class, self.func)
    }
}

/// Arguments bound to a function's parameters by Python's rules; every parameter has a value
/// (given or default), borrowing the given ones from the call's [`CallArgs`]. `'a` is the
/// lifetime of the arguments and of the parameter names.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound<'a> {
    values: Vec<(&'a str, Cow<'a, PyValue>)>,
}

/// The value [`Bound::get`] returns for a name that is not a parameter.
static NONE: PyValue = PyValue::None;

impl<'a> Bound<'a> {
    /// The value bound to parameter `name` (`None` if `name` is not a parameter).
    pub fn get(&self, name: &str) -> &PyValue {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| &**v)
            .unwrap_or(&NONE)
    }

    /// The bound values in parameter order.
    pub fn values(&self) -> &[(&'a str, Cow<'a, PyValue>)] {
        &self.values
    }

    /// The text of a `str` parameter, or a `TypeError`-like error naming it.
    pub fn str_arg(&self, name: &str) -> Result<&str, ToolError> {
        let v = self.get(name);
        v.as_str().ok_or_else(|| type_error(name, "str", v))
    }

    /// The value of an `int` parameter (a `bool` is accepted as 0/1, as Python does).
    pub fn i64_arg(&self, name: &str) -> Result<i64, ToolError> {
        match self.get(name) {
            PyValue::Int(i) => Ok(*i),
            PyValue::Bool(b) => Ok(i64::from(*b)),
            v => Err(type_error(name, "int", v)),
        }
    }

    /// The value of a numeric parameter (`float`, `int` or `bool`) as a float.
    pub fn f64_arg(&self, name: &str) -> Result<f64, ToolError> {
        match self.get(name) {
            PyValue::Float(f) => Ok(*f),
            PyValue::Int(i) => Ok(*i as f64),
            PyValue::Bool(b) => Ok(f64::from(u8::from(*b))),
            v => Err(type_error(name, "float", v)),
        }
    }

    /// The truthiness of a parameter (Python's `if value:`).
    pub fn bool_arg(&self, name: &str) -> bool {
        self.get(name).truthy()
    }
}

fn type_error(name: &str, expected: &str, got: &PyValue) -> ToolError {
    ToolError(format!(
        "argument '{name}' must be {expected}, not {}",
        got.type_name()
    ))
}

/// Python's way of listing names in a `TypeError`: `'a'`, `'a' and 'b'`, `'a', 'b', and 'c'`.
fn name_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        2 => format!("{} and {}", quoted[0], quoted[1]),
        n => format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

impl CallArgs {
    /// Keyword-only arguments, as `f(a=1, b='x')` would pass them.
    pub fn keywords(items: &[(&str, PyValue)]) -> CallArgs {
        CallArgs {
            positional: Vec::new(),
            keyword: items
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    /// Binds the arguments to `params` (name, default; `None` means required) by Python's rules
    /// for a method with positional-or-keyword parameters. `func` is the qualified name used in
    /// the messages (`GorillaFileSystem.mv`); the counts in them include `self`, as CPython's
    /// do for a bound method.
    pub fn bind<'a>(
        &'a self,
        func: &MethodName<'_>,
        params: &[(&'a str, Option<PyValue>)],
    ) -> Result<Bound<'a>, ToolError> {
        let n = params.len();
        if self.positional.len() > n {
            let required = params.iter().filter(|(_, d)| d.is_none()).count();
            let takes = if required == n {
                format!(
                    "{} positional argument{}",
                    n + 1,
                    if n + 1 == 1 { "" } else { "s" }
                )
            } else {
                format!("from {} to {} positional arguments", required + 1, n + 1)
            };
            let given = self.positional.len() + 1;
            return Err(ToolError(format!(
                "{func}() takes {takes} but {given} {} given",
                if given == 1 { "was" } else { "were" }
            )));
        }
        let mut slots: Vec<Option<&PyValue>> = vec![None; n];
        for (slot, v) in slots.iter_mut().zip(&self.positional) {
            *slot = Some(v);
        }
        for (name, v) in &self.keyword {
            match params.iter().position(|(p, _)| p == name) {
                None => {
                    return Err(ToolError(format!(
                        "{func}() got an unexpected keyword argument '{name}'"
                    )))
                }
                Some(i) => {
                    if slots[i].is_some() {
                        return Err(ToolError(format!(
                            "{func}() got multiple values for argument '{name}'"
                        )));
                    }
                    slots[i] = Some(v);
                }
            }
        }
        let missing: Vec<&str> = params
            .iter()
            .zip(&slots)
            .filter(|((_, d), s)| d.is_none() && s.is_none())
            .map(|((p, _), _)| *p)
            .collect();
        if !missing.is_empty() {
            return Err(ToolError(format!(
                "{func}() missing {} required positional argument{}: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                name_list(&missing)
            )));
        }
        let values = params
            .iter()
            .zip(slots)
            .map(|((p, d), s)| {
                let value = match s {
                    Some(v) => Cow::Borrowed(v),
                    None => Cow::Owned(d.clone().unwrap_or_default()),
                };
                (*p, value)
            })
            .collect();
        Ok(Bound { values })
    }
}

/// One BFCL multi-turn API class: a stateful tool environment behaving as BFCL's Python
/// reference does.
pub trait ToolEnv {
    /// The reference's `_load_scenario(config, long_context)`: the class's part of an entry's
    /// `initial_config` (an empty object when absent).
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        long_context: bool,
    ) -> Result<(), ToolError>;
    /// Calls public method `func` with `args`; an `Err` is the exception it raises.
    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError>;
    /// The instance's public attributes as JSON (a directory's parent link left out, sets as
    /// arrays with their elements sorted). It may change only through [`ToolEnv::call`].
    fn state(&self) -> serde_json::Value;
}

/// A BFCL multi-turn class: its Python name, its tools and their docs, and a constructor.
#[derive(Debug)]
pub struct ToolClass {
    /// The Python class name (`"GorillaFileSystem"`).
    pub name: &'static str,
    /// Its tool docs in BFCL's `multi_turn_func_doc` folder.
    pub doc_file: &'static str,
    /// The public method names the executor exposes as tools.
    pub functions: &'static [&'static str],
    /// A fresh instance, its scenario not loaded.
    pub new: fn() -> Box<dyn ToolEnv>,
}

/// The class named `class_name` (one of [`CLASSES`](super::apis::CLASSES)), or `None` for a
/// class not implemented.
pub fn tool_class(class_name: &str) -> Option<&'static ToolClass> {
    super::apis::CLASSES.iter().find(|c| c.name == class_name)
}

/// A fresh instance of BFCL class `class_name`, or `None` for a class not implemented.
pub fn new_env(class_name: &str) -> Option<Box<dyn ToolEnv>> {
    tool_class(class_name).map(|c| (c.new)())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(&'static str, Option<PyValue>)> {
        vec![("a", None), ("b", None), ("c", Some(PyValue::Int(3)))]
    }

    #[test]
    fn binds_like_python() {
        let args = CallArgs {
            positional: vec![PyValue::Int(1)],
            keyword: vec![("b".into(), PyValue::Int(2))],
        };
        let b = args.bind(&MethodName::new("C", "f"), &params()).unwrap();
        assert_eq!(b.get("c"), &PyValue::Int(3));
        assert_eq!(b.get("b"), &PyValue::Int(2));
    }

    #[test]
    fn errors_like_python() {
        let err = |a: CallArgs| a.bind(&MethodName::new("C", "f"), &params()).unwrap_err().0;
        assert_eq!(
            err(CallArgs::default()),
            "C.f() missing 2 required positional arguments: 'a' and 'b'"
        );
        assert_eq!(
            err(CallArgs {
                positional: vec![PyValue::None; 4],
                keyword: vec![]
            }),
            "C.f() takes from 3 to 4 positional arguments but 5 were given"
        );
        assert_eq!(
            err(CallArgs {
                positional: vec![PyValue::None],
                keyword: vec![("a".into(), PyValue::None)]
            }),
            "C.f() got multiple values for argument 'a'"
        );
        assert_eq!(
            err(CallArgs {
                positional: vec![],
                keyword: vec![("z".into(), PyValue::None)]
            }),
            "C.f() got an unexpected keyword argument 'z'"
        );
    }
}
