//! A checkpoint file's bytes: read, then turned into a model; a damaged file is an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use supo_train::builtin::{BuiltinModel, Checkpoint};

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_bytes(data) {
        let _ = BuiltinModel::from_checkpoint_data(&ckpt);
    }
});
