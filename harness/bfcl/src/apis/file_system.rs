//! `GorillaFileSystem`: BFCL's in-memory file system. Directories, their `contents` dicts and
//! files are separate objects, as in the reference, so the reference's sharing survives: a moved
//! or renamed directory shares its `contents` with the detached original (whose children still
//! name it as parent), and a copied directory shares its children with the source.

use indexmap::IndexMap;

use crate::env::{CallArgs, MethodName, ToolEnv, ToolError};
use crate::locate::long_context_value;
use crate::value::PyValue;

type DirId = usize;
type FileId = usize;
type DictId = usize;

/// An entry of a directory's `contents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    File(FileId),
    Dir(DirId),
}

#[derive(Debug, Clone)]
struct Dir {
    name: String,
    parent: Option<DirId>,
    contents: DictId,
}

#[derive(Debug, Clone)]
struct File {
    name: String,
    content: PyValue,
}

/// The public methods of `GorillaFileSystem`.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "cat", "cd", "cp", "diff", "du", "echo", "find", "grep", "ls", "mkdir", "mv", "pwd", "rm",
    "rmdir", "sort", "tail", "touch", "wc",
];

/// Characters a file or directory name may not hold.
const INVALID_NAME_CHARS: &str = "|/\\?%*:\"><";

/// BFCL's `GorillaFileSystem`.
#[derive(Debug, Clone)]
pub struct GorillaFileSystem {
    dirs: Vec<Dir>,
    files: Vec<File>,
    dicts: Vec<IndexMap<String, Item>>,
    root: DirId,
    current: DirId,
    long_context: bool,
}

impl Default for GorillaFileSystem {
    fn default() -> Self {
        let mut fs = GorillaFileSystem {
            dirs: Vec::new(),
            files: Vec::new(),
            dicts: Vec::new(),
            root: 0,
            current: 0,
            long_context: false,
        };
        fs.root = fs.new_dir("/".to_string(), None);
        fs.current = fs.root;
        fs
    }
}

/// A name argument as a dict key: `Ok(None)` for a hashable non-`str` (never a key of the
/// contents), an error for an unhashable one.
fn key_of(v: &PyValue) -> Result<Option<&str>, ToolError> {
    match v {
        PyValue::Str(s) => Ok(Some(s)),
        PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) => {
            Err(ToolError(format!("unhashable type: '{}'", v.type_name())))
        }
        _ => Ok(None),
    }
}

/// The text of a `str` argument a method of `str` is called on.
fn text_of<'a>(v: &'a PyValue, method: &str) -> Result<&'a str, ToolError> {
    v.as_str().ok_or_else(|| {
        ToolError(format!(
            "'{}' object has no attribute '{method}'",
            v.type_name()
        ))
    })
}

/// Python's `str.splitlines()`.
pub(crate) fn splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(_, '\n')) = iter.peek() {
                    iter.next();
                    end += 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's `str.isspace()` for one character.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// Python's `str.split()` with no separator.
pub(crate) fn split_words(s: &str) -> Vec<&str> {
    s.split(is_py_space).filter(|w| !w.is_empty()).collect()
}

fn err(msg: String) -> PyValue {
    PyValue::dict([("error", PyValue::Str(msg))])
}

fn one(key: &str, v: PyValue) -> PyValue {
    PyValue::dict([(key, v)])
}

impl GorillaFileSystem {
    fn new_dir(&mut self, name: String, parent: Option<DirId>) -> DirId {
        self.dicts.push(IndexMap::new());
        self.dirs.push(Dir {
            name,
            parent,
            contents: self.dicts.len() - 1,
        });
        self.dirs.len() - 1
    }

    fn contents(&self, d: DirId) -> &IndexMap<String, Item> {
        &self.dicts[self.dirs[d].contents]
    }

    fn contents_mut(&mut self, d: DirId) -> &mut IndexMap<String, Item> {
        let id = self.dirs[d].contents;
        &mut self.dicts[id]
    }

    /// `Directory._add_file`.
    fn add_file(&mut self, d: DirId, name: &str, content: PyValue) -> Result<(), ToolError> {
        if self.contents(d).contains_key(name) {
            return Err(ToolError(format!(
                "File '{name}' already exists in directory '{}'.",
                self.dirs[d].name
            )));
        }
        self.files.push(File {
            name: name.to_string(),
            content,
        });
        let f = self.files.len() - 1;
        self.contents_mut(d).insert(name.to_string(), Item::File(f));
        Ok(())
    }

    /// `Directory._add_directory`; returns the new directory.
    fn add_dir(&mut self, d: DirId, name: &str) -> Result<DirId, ToolError> {
        if self.contents(d).contains_key(name) {
            return Err(ToolError(format!(
                "Directory '{name}' already exists in directory '{}'.",
                self.dirs[d].name
            )));
        }
        let nd = self.new_dir(name.to_string(), Some(d));
        self.contents_mut(d).insert(name.to_string(), Item::Dir(nd));
        Ok(nd)
    }

    /// `Directory._get_item`.
    fn get_item(&self, d: DirId, name: &str) -> Option<Item> {
        if name == "." {
            return Some(Item::Dir(d));
        }
        self.contents(d).get(name).copied()
    }

    /// The entry `name` of the current directory (`name in contents`, then `_get_item`).
    fn current_item(&self, name: &PyValue) -> Result<Option<Item>, ToolError> {
        Ok(match key_of(name)? {
            Some(n) => self.lookup(n),
            None => None,
        })
    }

    /// `name in contents`, then `_get_item(name)`: an entry named `.` stands for the current
    /// directory itself.
    fn lookup(&self, name: &str) -> Option<Item> {
        let stored = self.contents(self.current).get(name).copied()?;
        Some(if name == "." {
            Item::Dir(self.current)
        } else {
            stored
        })
    }

    /// The current directory's file `name` when it is a file.
    fn current_file(&self, name: &PyValue) -> Result<Option<FileId>, ToolError> {
        Ok(match self.current_item(name)? {
            Some(Item::File(f)) => Some(f),
            _ => None,
        })
    }

    fn file_text(&self, f: FileId, method: &str) -> Result<&str, ToolError> {
        text_of(&self.files[f].content, method)
    }

    /// `_navigate_to_directory`: a directory, or the error dict.
    fn navigate(&self, path: &PyValue) -> Result<Result<DirId, PyValue>, ToolError> {
        let p = match path {
            PyValue::None => return Ok(Ok(self.current)),
            PyValue::Str(s) => s.as_str(),
            other => {
                // `path == "."` and `path == "/"` are false; `path.strip` fails.
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'strip'",
                    other.type_name()
                )));
            }
        };
        if p == "." {
            return Ok(Ok(self.current));
        }
        if p == "/" {
            return Ok(Ok(self.root));
        }
        let mut dir = if p.starts_with('/') {
            self.root
        } else {
            self.current
        };
        for part in p.trim_matches('/').split('/') {
            match self.get_item(dir, part) {
                Some(Item::Dir(next)) => dir = next,
                _ => return Ok(Err(err(format!("cd: '{p}': No such file or directory")))),
            }
        }
        Ok(Ok(dir))
    }

    /// `_validate_file_or_directory_name`.
    fn valid_name(v: &PyValue) -> Result<bool, ToolError> {
        let bad = |x: &PyValue| {
            x.as_str()
                .is_some_and(|s| s.chars().count() == 1 && INVALID_NAME_CHARS.contains(s))
        };
        match v {
            // The invalid characters are ASCII: a byte scan finds them.
            PyValue::Str(s) => Ok(!s
                .bytes()
                .any(|b| INVALID_NAME_CHARS.as_bytes().contains(&b))),
            PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => {
                Ok(!items.iter().any(bad))
            }
            PyValue::Dict(items) => Ok(!items.iter().any(|(k, _)| bad(k))),
            other => Err(ToolError(format!(
                "argument of type '{}' is not iterable",
                other.type_name()
            ))),
        }
    }

    /// A name that would become a dict key of the contents; names that are not `str` are not
    /// supported.
    fn new_name<'a>(&self, v: &'a PyValue) -> Result<&'a str, ToolError> {
        key_of(v)?.ok_or_else(|| {
            ToolError(format!(
                "names of type '{}' are not supported",
                v.type_name()
            ))
        })
    }

    fn dir_json(&self, d: DirId, depth: usize) -> serde_json::Value {
        let dir = &self.dirs[d];
        let mut m = serde_json::Map::new();
        m.insert("name".into(), dir.name.clone().into());
        if dir.parent.is_none() {
            m.insert("parent".into(), serde_json::Value::Null);
        }
        let mut c = serde_json::Map::new();
        if depth < 64 {
            for (k, item) in self.contents(d) {
                let v = match *item {
                    Item::File(f) => {
                        let file = &self.files[f];
                        let mut fm = serde_json::Map::new();
                        fm.insert("name".into(), file.name.clone().into());
                        fm.insert("content".into(), file.content.to_json());
                        serde_json::Value::Object(fm)
                    }
                    Item::Dir(sub) => self.dir_json(sub, depth + 1),
                };
                c.insert(k.clone(), v);
            }
        }
        m.insert("contents".into(), serde_json::Value::Object(c));
        serde_json::Value::Object(m)
    }

    fn load_dir(
        &mut self,
        current: &serde_json::Map<String, serde_json::Value>,
        parent: DirId,
        tail_used: &[PyValue],
    ) -> Result<(), ToolError> {
        let mut bottommost = true;
        for (name, data) in current {
            let kind = data
                .get("type")
                .ok_or_else(|| ToolError("'type'".to_string()))?;
            match kind.as_str() {
                Some("directory") => {
                    bottommost = false;
                    let nd = self.new_dir(name.clone(), Some(parent));
                    let sub = data
                        .get("contents")
                        .and_then(|c| c.as_object())
                        .ok_or_else(|| ToolError("'contents'".to_string()))?;
                    self.load_dir(sub, nd, tail_used)?;
                    self.contents_mut(parent)
                        .insert(name.clone(), Item::Dir(nd));
                }
                Some("file") => {
                    let mut content = PyValue::from_json(
                        data.get("content")
                            .ok_or_else(|| ToolError("'content'".to_string()))?,
                    );
                    if self.long_context && !tail_used.iter().any(|t| t.as_str() == Some(name)) {
                        let ext = long_context_value("FILE_CONTENT_EXTENSION")?;
                        if let (PyValue::Str(c), Some(e)) = (&mut content, ext.as_str()) {
                            c.push_str(e);
                        }
                    }
                    self.files.push(File {
                        name: name.clone(),
                        content,
                    });
                    let f = self.files.len() - 1;
                    self.contents_mut(parent)
                        .insert(name.clone(), Item::File(f));
                }
                _ => {}
            }
        }
        if bottommost && self.long_context {
            let names = long_context_value("POPULATE_FILE_EXTENSION")?;
            for n in names.as_list().unwrap_or(&[]) {
                self.add_file(parent, &n.py_str(), PyValue::str(""))?;
            }
        }
        Ok(())
    }

    fn pwd(&self) -> PyValue {
        let mut path = Vec::new();
        let mut d = Some(self.current);
        let mut guard = 0;
        while let Some(id) = d {
            path.push(self.dirs[id].name.as_str());
            d = self.dirs[id].parent;
            guard += 1;
            if guard > self.dirs.len() {
                break;
            }
        }
        path.reverse();
        one(
            "current_working_directory",
            PyValue::Str(format!("/{}", path.join("/"))),
        )
    }

    fn ls(&self, a: &PyValue) -> PyValue {
        let items = self
            .contents(self.current)
            .keys()
            .filter(|k| a.truthy() || !k.starts_with('.'))
            .map(|k| PyValue::Str(k.clone()))
            .collect();
        one("current_directory_content", PyValue::List(items))
    }

    /// `Directory.__eq__`: same name and equal contents, recursively.
    fn dir_eq(&self, a: DirId, b: DirId, depth: usize) -> bool {
        if a == b {
            return true;
        }
        if depth > 64 || self.dirs[a].name != self.dirs[b].name {
            return false;
        }
        let (ca, cb) = (self.contents(a), self.contents(b));
        ca.len() == cb.len()
            && ca.iter().all(|(k, ia)| match (ia, cb.get(k)) {
                (Item::File(fa), Some(Item::File(fb))) => {
                    let (x, y) = (&self.files[*fa], &self.files[*fb]);
                    x.name == y.name && x.content == y.content
                }
                (Item::Dir(da), Some(Item::Dir(db))) => self.dir_eq(*da, *db, depth + 1),
                _ => false,
            })
    }

    fn cd(&mut self, folder: &PyValue) -> Result<PyValue, ToolError> {
        let f = text_of(folder, "rstrip")?;
        let mut f = f.trim_end_matches('/').to_string();
        if f.is_empty() {
            f = "/".to_string();
        }
        if !matches!(f.as_str(), "." | ".." | "/") && f.contains('/') {
            return Ok(err(format!(
                "cd: {f}: Unsupported path. Only one folder level at a time is supported."
            )));
        }
        if f == ".." {
            if let Some(p) = self.dirs[self.current].parent {
                self.current = p;
            } else if self.dir_eq(self.root, self.current, 0) {
                return Ok(err(
                    "Current directory is already the root. Cannot go back.".to_string(),
                ));
            } else {
                return Ok(err("cd: ..: No such directory".to_string()));
            }
            return Ok(PyValue::Dict(Vec::new()));
        }
        match self.navigate(&PyValue::Str(f))? {
            Err(e) => Ok(e),
            Ok(d) => {
                self.current = d;
                Ok(one(
                    "current_working_directory",
                    PyValue::Str(self.dirs[d].name.clone()),
                ))
            }
        }
    }

    fn mkdir(&mut self, dir_name: &PyValue) -> Result<PyValue, ToolError> {
        let shown = dir_name.py_str();
        if !Self::valid_name(dir_name)? {
            return Ok(err(format!(
                "mkdir: cannot create directory '{shown}': Invalid character"
            )));
        }
        if self.current_item(dir_name)?.is_some() {
            return Ok(err(format!(
                "mkdir: cannot create directory '{shown}': File exists"
            )));
        }
        let name = self.new_name(dir_name)?;
        self.add_dir(self.current, name)?;
        Ok(PyValue::None)
    }

    fn touch(&mut self, file_name: &PyValue) -> Result<PyValue, ToolError> {
        let shown = file_name.py_str();
        if !Self::valid_name(file_name)? {
            return Ok(err(format!(
                "touch: cannot touch '{shown}': Invalid character"
            )));
        }
        if self.current_item(file_name)?.is_some() {
            return Ok(err(format!("touch: cannot touch '{shown}': File exists")));
        }
        let name = self.new_name(file_name)?;
        self.add_file(self.current, name, PyValue::str(""))?;
        Ok(PyValue::None)
    }

    fn echo(&mut self, content: &PyValue, file_name: &PyValue) -> Result<PyValue, ToolError> {
        if file_name.is_none() {
            return Ok(one("terminal_output", content.clone()));
        }
        let shown = file_name.py_str();
        if !Self::valid_name(file_name)? {
            return Ok(err(format!(
                "echo: cannot write to '{shown}': Invalid character"
            )));
        }
        if !file_name.truthy() {
            return Ok(one("terminal_output", content.clone()));
        }
        match self.current_item(file_name)? {
            Some(Item::File(f)) => {
                self.files[f].content = content.clone();
                Ok(PyValue::None)
            }
            Some(Item::Dir(_)) => Err(ToolError(
                "'Directory' object has no attribute '_write'".to_string(),
            )),
            None => Ok(err(format!(
                "echo: cannot write to '{shown}': No such file"
            ))),
        }
    }

    fn cat(&self, file_name: &PyValue) -> Result<PyValue, ToolError> {
        let shown = file_name.py_str();
        if !Self::valid_name(file_name)? {
            return Ok(err(format!("cat: '{shown}': Invalid character")));
        }
        Ok(match self.current_item(file_name)? {
            Some(Item::File(f)) => one("file_content", self.files[f].content.clone()),
            Some(Item::Dir(_)) => err(format!("cat: '{shown}': Is a directory")),
            None => err(format!("cat: '{shown}': No such file or directory")),
        })
    }

    fn find(&self, path: &PyValue, name: &PyValue) -> Result<PyValue, ToolError> {
        let target = match self.navigate(path)? {
            Ok(d) => d,
            Err(e) => {
                let msg = e.get("error").and_then(|m| m.as_str()).unwrap_or("");
                if let Some(rest) = msg.strip_prefix("cd:") {
                    return Ok(err(format!("find:{rest}")));
                }
                return Ok(e);
            }
        };
        let base = text_of(path, "rstrip")?.trim_end_matches('/').to_string();
        let needle = match name {
            PyValue::None => None,
            PyValue::Str(s) => Some(s.as_str()),
            // Python only evaluates `name in item_name` at the first item: an empty directory
            // answers no matches whatever `name` is.
            _ if self.contents(target).is_empty() => None,
            other => {
                return Err(ToolError(format!(
                    "'in <string>' requires string as left operand, not {}",
                    other.type_name()
                )))
            }
        };
        let mut matches = Vec::new();
        self.search(target, &base, needle, &mut matches, 0);
        Ok(one("matches", PyValue::List(matches)))
    }

    fn search(
        &self,
        d: DirId,
        base: &str,
        needle: Option<&str>,
        out: &mut Vec<PyValue>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        for (item_name, item) in self.contents(d) {
            let path = format!("{base}/{item_name}");
            if needle.is_none_or(|n| item_name.contains(n)) {
                out.push(PyValue::Str(path.clone()));
            }
            if let Item::Dir(sub) = item {
                self.search(*sub, &path, needle, out, depth + 1);
            }
        }
    }

    fn wc(&self, file_name: &PyValue, mode: &PyValue) -> Result<PyValue, ToolError> {
        let m = mode.as_str().unwrap_or("");
        if !matches!(mode.as_str(), Some("l" | "w" | "c")) {
            return Ok(err(format!("wc: invalid mode '{}'", mode.py_str())));
        }
        if let Some(f) = self.current_file(file_name)? {
            let text = self.file_text(f, "splitlines")?;
            let (count, kind) = match m {
                "l" => (splitlines(text).len(), "lines"),
                "w" => (split_words(text).len(), "words"),
                _ => (text.chars().count(), "characters"),
            };
            return Ok(PyValue::dict([
                ("count", PyValue::Int(count as i64)),
                ("type", PyValue::str(kind)),
            ]));
        }
        Ok(err(format!(
            "wc: {}: No such file or directory",
            file_name.py_str()
        )))
    }

    fn sort(&self, file_name: &PyValue) -> Result<PyValue, ToolError> {
        if let Some(f) = self.current_file(file_name)? {
            let mut lines = splitlines(self.file_text(f, "splitlines")?);
            // Python compares strings by code point, as Rust's `str` ordering does.
            lines.sort();
            return Ok(one("sorted_content", PyValue::Str(lines.join("\n"))));
        }
        Ok(err(format!(
            "sort: {}: No such file or directory",
            file_name.py_str()
        )))
    }

    fn grep(&self, file_name: &PyValue, pattern: &PyValue) -> Result<PyValue, ToolError> {
        if let Some(f) = self.current_file(file_name)? {
            let lines = splitlines(self.file_text(f, "splitlines")?);
            let mut out = Vec::new();
            for line in lines {
                // `pattern in line` fails only when there is a line to test.
                let pat = pattern.as_str().ok_or_else(|| {
                    ToolError(format!(
                        "'in <string>' requires string as left operand, not {}",
                        pattern.type_name()
                    ))
                })?;
                if line.contains(pat) {
                    out.push(PyValue::str(line));
                }
            }
            return Ok(one("matching_lines", PyValue::List(out)));
        }
        Ok(err(format!(
            "grep: {}: No such file or directory",
            file_name.py_str()
        )))
    }

    fn size(&self, item: Item, depth: usize) -> Result<usize, ToolError> {
        match item {
            Item::File(f) => Ok(self.file_text(f, "encode")?.len()),
            Item::Dir(d) => {
                if depth > 64 {
                    return Err(ToolError("maximum recursion depth exceeded".to_string()));
                }
                let mut total = 0;
                for item in self.contents(d).values() {
                    total += self.size(*item, depth + 1)?;
                }
                Ok(total)
            }
        }
    }

    fn du(&self, human_readable: &PyValue) -> Result<PyValue, ToolError> {
        let total = self.size(Item::Dir(self.current), 0)?;
        let text = if human_readable.truthy() {
            let mut size = total as f64;
            let mut out = None;
            for unit in ["B", "KB", "MB", "GB", "TB"] {
                if size < 1024.0 {
                    out = Some(format!("{size:.2} {unit}"));
                    break;
                }
                size /= 1024.0;
            }
            out.unwrap_or_else(|| format!("{size:.2} PB"))
        } else {
            format!("{total} bytes")
        };
        Ok(one("disk_usage", PyValue::Str(text)))
    }

    fn tail(&self, file_name: &PyValue, lines: &PyValue) -> Result<PyValue, ToolError> {
        if let Some(f) = self.current_file(file_name)? {
            let content = splitlines(self.file_text(f, "splitlines")?);
            let len = content.len() as i64;
            let n = match lines {
                PyValue::Int(i) => *i,
                PyValue::Bool(b) => i64::from(*b),
                PyValue::Float(x) if *x > len as f64 => len,
                PyValue::Float(_) => {
                    return Err(ToolError(
                        "slice indices must be integers or None or have an __index__ method"
                            .to_string(),
                    ))
                }
                other => {
                    return Err(ToolError(format!(
                        "'>' not supported between instances of '{}' and 'int'",
                        other.type_name()
                    )))
                }
            };
            let n = n.min(len);
            // content[-n:]
            let start = if n > 0 { len - n } else { (-n).min(len) };
            let start = start.clamp(0, len) as usize;
            return Ok(one("last_lines", PyValue::Str(content[start..].join("\n"))));
        }
        Ok(err(format!(
            "tail: {}: No such file or directory",
            file_name.py_str()
        )))
    }

    fn diff(&self, a: &PyValue, b: &PyValue) -> Result<PyValue, ToolError> {
        // `a in contents and b in contents`: `b` is looked up only when `a` is there.
        let ia = self.current_item(a)?;
        let ib = if ia.is_some() {
            self.current_item(b)?
        } else {
            None
        };
        if let (Some(Item::File(fa)), Some(Item::File(fb))) = (ia, ib) {
            let la = splitlines(self.file_text(fa, "splitlines")?);
            let lb = splitlines(self.file_text(fb, "splitlines")?);
            let lines: Vec<String> = la
                .iter()
                .zip(&lb)
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("- {x}\n+ {y}"))
                .collect();
            return Ok(one("diff_lines", PyValue::Str(lines.join("\n"))));
        }
        Ok(err(format!(
            "diff: {} or {}: No such file or directory",
            a.py_str(),
            b.py_str()
        )))
    }

    /// `mv` (`copy == false`) and `cp` (`copy == true`).
    fn move_or_copy(
        &mut self,
        source: &PyValue,
        destination: &PyValue,
        copy: bool,
    ) -> Result<PyValue, ToolError> {
        let (verb, past) = if copy { ("cp", "copy") } else { ("mv", "move") };
        let src_shown = source.py_str();
        let Some(item) = self.current_item(source)? else {
            return Ok(err(format!(
                "{verb}: cannot {past} '{src_shown}': No such file or directory"
            )));
        };
        let dest = match destination {
            PyValue::Str(s) => s.as_str(),
            other => {
                return Err(ToolError(format!(
                    "'in <string>' requires string as left operand, not {}",
                    other.type_name()
                )))
            }
        };
        if dest.contains('/') {
            return Ok(err(format!(
                "{verb}: path not allowed in destination. Provide only a file or directory name."
            )));
        }
        let src = self.new_name(source)?.to_string();
        let cur = self.current;
        let done = if copy { "copied" } else { "moved" };
        if let Some(dest_item) = self.lookup(dest) {
            let Item::Dir(dd) = dest_item else {
                return Ok(err(format!(
                    "{verb}: cannot {past} '{src}' to '{dest}': Not a directory"
                )));
            };
            // `mv` checks for `source` in the destination; `cp` checks `destination/source`,
            // which never matches, so a clash surfaces as `_add_*`'s exception.
            if !copy && self.contents(dd).contains_key(&src) {
                return Ok(err(format!(
                    "mv: cannot move '{src}' to '{dest}/{src}': File exists"
                )));
            }
            if !copy {
                self.contents_mut(cur).shift_remove(&src);
            }
            self.place(item, dd, &src, copy)?;
            return Ok(one(
                "result",
                PyValue::Str(format!("'{src}' {done} to '{dest}/{src}'")),
            ));
        }
        if !copy {
            self.contents_mut(cur).shift_remove(&src);
        }
        self.place(item, cur, dest, copy)?;
        Ok(one(
            "result",
            PyValue::Str(format!("'{src}' {done} to '{dest}'")),
        ))
    }

    /// Adds `item` to directory `into` under `name`: a new file with the same content, or a
    /// new directory sharing (move) or shallow-copying (copy) the contents dict.
    fn place(&mut self, item: Item, into: DirId, name: &str, copy: bool) -> Result<(), ToolError> {
        match item {
            Item::File(f) => {
                let content = self.files[f].content.clone();
                self.add_file(into, name, content)
            }
            Item::Dir(d) => {
                let nd = self.add_dir(into, name)?;
                let src_dict = self.dirs[d].contents;
                self.dirs[nd].contents = if copy {
                    let copied = self.dicts[src_dict].clone();
                    self.dicts.push(copied);
                    self.dicts.len() - 1
                } else {
                    src_dict
                };
                Ok(())
            }
        }
    }

    fn rm(&mut self, file_name: &PyValue) -> Result<PyValue, ToolError> {
        let shown = file_name.py_str();
        if self.current_item(file_name)?.is_some() {
            let name = self.new_name(file_name)?.to_string();
            let cur = self.current;
            self.contents_mut(cur).shift_remove(&name);
            return Ok(one("result", PyValue::Str(format!("'{shown}' removed"))));
        }
        Ok(err(format!(
            "rm: cannot remove '{shown}': No such file or directory"
        )))
    }

    fn rmdir(&mut self, dir_name: &PyValue) -> Result<PyValue, ToolError> {
        let shown = dir_name.py_str();
        match self.current_item(dir_name)? {
            Some(Item::Dir(d)) => {
                if !self.contents(d).is_empty() {
                    return Ok(err(format!(
                        "rmdir: cannot remove '{shown}': Directory not empty"
                    )));
                }
                let name = self.new_name(dir_name)?.to_string();
                let cur = self.current;
                self.contents_mut(cur).shift_remove(&name);
                Ok(one("result", PyValue::Str(format!("'{shown}' removed"))))
            }
            Some(Item::File(_)) => Ok(err(format!(
                "rmdir: cannot remove '{shown}': Not a directory"
            ))),
            None => Ok(err(format!(
                "rmdir: cannot remove '{shown}': No such file or directory"
            ))),
        }
    }
}

impl ToolEnv for GorillaFileSystem {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        long_context: bool,
    ) -> Result<(), ToolError> {
        *self = GorillaFileSystem::default();
        self.long_context = long_context;
        let tail_used: Vec<PyValue> = if long_context {
            long_context_value("FILES_TAIL_USED")?
                .as_list()
                .map(<[PyValue]>::to_vec)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(root) = config.get("root").and_then(|r| r.as_object()) {
            let Some((name, data)) = root.iter().next() else {
                return Err(ToolError("list index out of range".to_string()));
            };
            let r = self.new_dir(name.clone(), None);
            let contents = data
                .get("contents")
                .and_then(|c| c.as_object())
                .ok_or_else(|| ToolError("'contents'".to_string()))?;
            self.load_dir(contents, r, &tail_used)?;
            self.root = r;
        }
        self.current = self.root;
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let q = MethodName::new("GorillaFileSystem", func);
        let req = |n: &'static str| (n, None);
        let opt = |n: &'static str, v: PyValue| (n, Some(v));
        match func {
            "pwd" => {
                args.bind(&q, &[])?;
                Ok(self.pwd())
            }
            "ls" => {
                let b = args.bind(&q, &[opt("a", PyValue::Bool(false))])?;
                Ok(self.ls(b.get("a")))
            }
            "cd" => {
                let b = args.bind(&q, &[req("folder")])?;
                self.cd(b.get("folder"))
            }
            "mkdir" => {
                let b = args.bind(&q, &[req("dir_name")])?;
                self.mkdir(b.get("dir_name"))
            }
            "touch" => {
                let b = args.bind(&q, &[req("file_name")])?;
                self.touch(b.get("file_name"))
            }
            "echo" => {
                let b = args.bind(&q, &[req("content"), opt("file_name", PyValue::None)])?;
                self.echo(b.get("content"), b.get("file_name"))
            }
            "cat" => {
                let b = args.bind(&q, &[req("file_name")])?;
                self.cat(b.get("file_name"))
            }
            "find" => {
                let b = args.bind(
                    &q,
                    &[opt("path", PyValue::str(".")), opt("name", PyValue::None)],
                )?;
                self.find(b.get("path"), b.get("name"))
            }
            "wc" => {
                let b = args.bind(&q, &[req("file_name"), opt("mode", PyValue::str("l"))])?;
                self.wc(b.get("file_name"), b.get("mode"))
            }
            "sort" => {
                let b = args.bind(&q, &[req("file_name")])?;
                self.sort(b.get("file_name"))
            }
            "grep" => {
                let b = args.bind(&q, &[req("file_name"), req("pattern")])?;
                self.grep(b.get("file_name"), b.get("pattern"))
            }
            "du" => {
                let b = args.bind(&q, &[opt("human_readable", PyValue::Bool(false))])?;
                self.du(b.get("human_readable"))
            }
            "tail" => {
                let b = args.bind(&q, &[req("file_name"), opt("lines", PyValue::Int(10))])?;
                self.tail(b.get("file_name"), b.get("lines"))
            }
            "diff" => {
                let b = args.bind(&q, &[req("file_name1"), req("file_name2")])?;
                self.diff(b.get("file_name1"), b.get("file_name2"))
            }
            "mv" => {
                let b = args.bind(&q, &[req("source"), req("destination")])?;
                self.move_or_copy(b.get("source"), b.get("destination"), false)
            }
            "cp" => {
                let b = args.bind(&q, &[req("source"), req("destination")])?;
                self.move_or_copy(b.get("source"), b.get("destination"), true)
            }
            "rm" => {
                let b = args.bind(&q, &[req("file_name")])?;
                self.rm(b.get("file_name"))
            }
            "rmdir" => {
                let b = args.bind(&q, &[req("dir_name")])?;
                self.rmdir(b.get("dir_name"))
            }
            _ => Err(ToolError(format!("name '{func}' is not defined"))),
        }
    }

    fn state(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("long_context".into(), self.long_context.into());
        m.insert("root".into(), self.dir_json(self.root, 0));
        serde_json::Value::Object(m)
    }
}
