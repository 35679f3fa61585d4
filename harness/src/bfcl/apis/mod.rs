//! The eight BFCL multi-turn API classes and their registry.

pub mod file_system;
pub mod math;
pub mod message;
pub mod posting;
pub mod pyops;
pub mod ticket;
pub mod trading;
pub mod travel;
pub mod vehicle;

use super::env::ToolEnv;

/// A fresh instance of BFCL class `class_name`, or `None` for a class not implemented.
pub fn new_env(class_name: &str) -> Option<Box<dyn ToolEnv>> {
    let env: Box<dyn ToolEnv> = match class_name {
        "GorillaFileSystem" => Box::new(file_system::GorillaFileSystem::default()),
        "MathAPI" => Box::new(math::MathApi),
        "MessageAPI" => Box::new(message::MessageApi::default()),
        "TwitterAPI" => Box::new(posting::TwitterApi::default()),
        "TicketAPI" => Box::new(ticket::TicketApi::default()),
        "TradingBot" => Box::new(trading::TradingBot::default()),
        "TravelAPI" => Box::new(travel::TravelApi::default()),
        "VehicleControlAPI" => Box::new(vehicle::VehicleControlApi::default()),
        _ => return None,
    };
    Some(env)
}
