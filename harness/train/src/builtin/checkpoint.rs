//! Checkpoint files: a JSON header (free-form metadata and the tensor table) and the tensors
//! as little-endian f32, written atomically.
//!
//! Layout: the 10 bytes `SUPO-CKPT\n`, the header's length as a little-endian u64, the header
//! (UTF-8 JSON: `{"format": 1, "meta": …, "tensors": [{"name": …, "len": …}]}`), then each
//! tensor's values in table order.

use std::path::Path;

use serde::{Deserialize, Serialize};

use supo_core::fs::write_atomic;

const MAGIC: &[u8; 10] = b"SUPO-CKPT\n";
const FORMAT: u32 = 1;

/// Named f32 tensors with JSON metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Anything the writer wants back (configurations, training state).
    pub meta: serde_json::Value,
    /// `(name, values)` in file order.
    pub tensors: Vec<(String, Vec<f32>)>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    meta: serde_json::Value,
    tensors: Vec<TensorEntry>,
}

#[derive(Serialize, Deserialize)]
struct TensorEntry {
    name: String,
    len: usize,
}

impl Checkpoint {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Removes and returns the tensor called `name`.
    pub fn take(&mut self, name: &str) -> Option<Vec<f32>> {
        let i = self.tensors.iter().position(|(n, _)| n == name)?;
        Some(self.tensors.remove(i).1)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            format: FORMAT,
            meta: self.meta.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|(name, v)| TensorEntry {
                    name: name.clone(),
                    len: v.len(),
                })
                .collect(),
        };
        let header = serde_json::to_vec(&header).expect("a JSON value serializes");
        let data: usize = self.tensors.iter().map(|(_, v)| v.len() * 4).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + data);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, v) in &self.tensors {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Parses a file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or("not a supo checkpoint (bad magic bytes)")?;
        if rest.len() < 8 {
            return Err("truncated checkpoint: no header length".into());
        }
        let (len, rest) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        if rest.len() < len {
            return Err("truncated checkpoint: header cut short".into());
        }
        let (header, mut data) = rest.split_at(len);
        let header: Header = serde_json::from_slice(header)
            .map_err(|e| format!("the checkpoint header is not valid: {e}"))?;
        if header.format != FORMAT {
            return Err(format!(
                "checkpoint format {} is not supported (this build reads {FORMAT})",
                header.format
            ));
        }
        let mut tensors = Vec::with_capacity(header.tensors.len());
        for t in header.tensors {
            let bytes = t
                .len
                .checked_mul(4)
                .filter(|&b| b <= data.len())
                .ok_or_else(|| format!("truncated checkpoint: tensor {} cut short", t.name))?;
            let (raw, tail) = data.split_at(bytes);
            data = tail;
            let v = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            tensors.push((t.name, v));
        }
        if !data.is_empty() {
            return Err(format!(
                "the checkpoint has {} bytes after its last tensor",
                data.len()
            ));
        }
        Ok(Checkpoint {
            meta: header.meta,
            tensors,
        })
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        write_atomic(path, &self.to_bytes())
            .map_err(|e| format!("cannot write checkpoint {}: {e}", path.display()))
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Checkpoint, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
        Checkpoint::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let c = Checkpoint {
            meta: serde_json::json!({"step": 3}),
            tensors: vec![("a".into(), vec![1.0, -2.5]), ("b".into(), vec![])],
        };
        let bytes = c.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), c);
        for cut in [0, 5, 12, 20, bytes.len() - 1] {
            assert!(Checkpoint::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Checkpoint::from_bytes(&extra).is_err());
    }
}
