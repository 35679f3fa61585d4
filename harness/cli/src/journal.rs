//! Append-only journals of finished work: one JSON line per finished item, synced to disk as
//! it is written, so a run killed at any moment loses at most the items in flight and a
//! resumed run skips the rest. The first line identifies the run (its settings); a journal is
//! resumed only by the same run, and removed once the run's outputs are written.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::CliError;

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens the journal at `path` for the run identified by `header`. A new run (`resume`
    /// false) starts an empty journal, and refuses to overwrite one in which an interrupted run
    /// finished work. A resumed run gets the entries already journaled (a line torn by the kill is
    /// dropped and cut off the file); a missing journal resumes nothing, and a journal of a run
    /// with other settings is an error.
    pub fn open(
        path: &Path,
        header: &Value,
        resume: bool,
    ) -> Result<(Journal, Vec<Value>), CliError> {
        let shown = path.display();
        let io = |e: std::io::Error| CliError::Failure(format!("journal {shown}: {e}"));
        if !resume || !path.exists() {
            // A journal that holds no finished item (only its header) has nothing to lose.
            let finished = std::fs::read_to_string(path)
                .map(|t| t.lines().count() > 1)
                .unwrap_or(false);
            if finished {
                return Err(CliError::Input(format!(
                    "{shown} holds the journal of an interrupted run: pass --resume to continue \
                     it, or delete it to start again"
                )));
            }
            let mut file = File::create(path).map_err(io)?;
            writeln!(file, "{header}").map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok((
                Journal {
                    file,
                    path: path.to_path_buf(),
                },
                Vec::new(),
            ));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut reader = BufReader::new(&mut file);
        let mut entries = Vec::new();
        let mut line = String::new();
        let mut kept = 0u64;
        let mut first = true;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                break;
            };
            if first {
                if &value != header {
                    return Err(CliError::Input(format!(
                        "{shown} is the journal of a run with other settings ({value}); rerun \
                         with those, or delete it to start again"
                    )));
                }
                first = false;
            } else {
                entries.push(value);
            }
            kept += n as u64;
        }
        if first {
            return Err(CliError::Input(format!(
                "{shown} is not a journal (no header line)"
            )));
        }
        file.set_len(kept).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            entries,
        ))
    }

    /// Appends one entry and syncs it to disk.
    pub fn append(&mut self, entry: &Value) -> std::io::Result<()> {
        let mut line = entry.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Removes the journal: the run's outputs are written.
    pub fn finish(self) -> Result<(), CliError> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .map_err(|e| CliError::Failure(format!("cannot remove {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resumes_complete_lines_and_refuses_other_runs() {
        let dir = std::env::temp_dir().join(format!("supo-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.journal");
        let header = json!({"run": 1});
        let (j, done) = Journal::open(&path, &header, false).unwrap();
        assert!(done.is_empty());
        drop(j);
        // Nothing finished yet: a new run may start over.
        let (mut j, _) = Journal::open(&path, &header, false).unwrap();
        j.append(&json!({"job": 0})).unwrap();
        j.append(&json!({"job": 1})).unwrap();
        drop(j);
        // A kill in the middle of a line leaves it torn: it is dropped and cut off.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"job\": 2, \"resu").unwrap();
        drop(f);
        assert!(Journal::open(&path, &header, false)
            .unwrap_err()
            .to_string()
            .contains("--resume"));
        let other = Journal::open(&path, &json!({"run": 2}), true).unwrap_err();
        assert!(other.to_string().contains("other settings"), "{other}");
        let (mut j, done) = Journal::open(&path, &header, true).unwrap();
        assert_eq!(done, vec![json!({"job": 0}), json!({"job": 1})]);
        j.append(&json!({"job": 2})).unwrap();
        drop(j);
        let (j, done) = Journal::open(&path, &header, true).unwrap();
        assert_eq!(done.len(), 3);
        j.finish().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
