//! The eight BFCL multi-turn API classes and their registry.

pub mod file_system;
pub mod math;
pub mod message;
pub mod posting;
pub mod ticket;
pub mod trading;
pub mod travel;
pub mod vehicle;

use super::env::ToolEnv;

/// A fresh instance of BFCL class `class_name`, or `None` for a class not implemented.
pub fn new_env(class_name: &str) -> Option<Box<dyn ToolEnv>> {
    let env: Box<dyn ToolEnv> = match class_name {
        // Each implemented class adds its line here:
        // "GorillaFileSystem" => Box::new(file_system::GorillaFileSystem::default()),
        _ => return None,
    };
    #[allow(unreachable_code)]
    Some(env)
}
