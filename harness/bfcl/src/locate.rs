//! Finding the installed `bfcl-eval` package (BFCL's data and Python reference are a run-time
//! dependency, never copied into the repository) and reading its long-context filler module.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::env::ToolError;
use super::parse::parse_module;
use super::value::PyValue;

/// The command that installs the pinned BFCL package.
pub const INSTALL_COMMAND: &str = "pip install --no-deps bfcl-eval==2026.3.23 mpmath";

/// The package folder's path inside `bfcl_eval` of the long-context filler module.
const LONG_CONTEXT_MODULE: &str = "eval_checker/multi_turn_eval/func_source_code/long_context.py";

/// The `bfcl_eval` package folder: `BFCL_EVAL_DIR` when set, otherwise what `python3` reports
/// for `import bfcl_eval`. The error names the install command.
pub fn bfcl_eval_dir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(find_bfcl_eval_dir).clone()
}

fn find_bfcl_eval_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("BFCL_EVAL_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if is_bfcl_eval(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "BFCL_EVAL_DIR={} is not the bfcl_eval package folder (no {}); install it with \
                 `{INSTALL_COMMAND}` (or scripts/install-bfcl.sh DIR) and point BFCL_EVAL_DIR \
                 at DIR/bfcl_eval",
                dir.display(),
                LONG_CONTEXT_MODULE
            ))
        };
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import bfcl_eval,os;print(os.path.dirname(bfcl_eval.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output();
    let missing = || {
        format!(
            "BFCL data not found: set BFCL_EVAL_DIR to the bfcl_eval package folder, or \
             install the package for python3 with `{INSTALL_COMMAND}`"
        )
    };
    match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if is_bfcl_eval(&dir) {
                Ok(dir)
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn is_bfcl_eval(dir: &Path) -> bool {
    dir.join(LONG_CONTEXT_MODULE).is_file()
}

/// The folder of BFCL's multi-turn tool docs (`data/multi_turn_func_doc`).
pub fn func_doc_dir() -> Result<PathBuf, String> {
    Ok(bfcl_eval_dir()?.join("data").join("multi_turn_func_doc"))
}

/// The folder of BFCL's data files (`data`).
pub fn data_dir() -> Result<PathBuf, String> {
    Ok(bfcl_eval_dir()?.join("data"))
}

/// BFCL's long-context filler: the module's assignments, in order.
pub fn long_context() -> Result<&'static [(String, PyValue)], String> {
    static FILLER: OnceLock<Result<Vec<(String, PyValue)>, String>> = OnceLock::new();
    FILLER
        .get_or_init(|| {
            let path = bfcl_eval_dir()?.join(LONG_CONTEXT_MODULE);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse_module(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
        })
        .as_ref()
        .map(|v| v.as_slice())
        .map_err(|e| e.clone())
}

/// One value of the long-context filler (`FILE_CONTENT_EXTENSION`, `WATCH_LIST_EXTENSION`, …),
/// as a tool error when the filler cannot be had.
pub fn long_context_value(name: &str) -> Result<&'static PyValue, ToolError> {
    long_context()
        .map_err(ToolError)?
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| ToolError(format!("BFCL long-context filler has no {name}")))
}
