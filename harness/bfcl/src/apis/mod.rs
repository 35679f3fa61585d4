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

use super::env::ToolClass;

/// The eight classes, in BFCL's order.
pub static CLASSES: [ToolClass; 8] = [
    ToolClass {
        name: "GorillaFileSystem",
        doc_file: "gorilla_file_system.json",
        functions: file_system::FUNCTIONS,
        new: || Box::new(file_system::GorillaFileSystem::default()),
    },
    ToolClass {
        name: "MathAPI",
        doc_file: "math_api.json",
        functions: math::FUNCTIONS,
        new: || Box::new(math::MathApi),
    },
    ToolClass {
        name: "MessageAPI",
        doc_file: "message_api.json",
        functions: message::FUNCTIONS,
        new: || Box::new(message::MessageApi::default()),
    },
    ToolClass {
        name: "TwitterAPI",
        doc_file: "posting_api.json",
        functions: posting::FUNCTIONS,
        new: || Box::new(posting::TwitterApi::default()),
    },
    ToolClass {
        name: "TicketAPI",
        doc_file: "ticket_api.json",
        functions: ticket::FUNCTIONS,
        new: || Box::new(ticket::TicketApi::default()),
    },
    ToolClass {
        name: "TradingBot",
        doc_file: "trading_bot.json",
        functions: trading::FUNCTIONS,
        new: || Box::new(trading::TradingBot::default()),
    },
    ToolClass {
        name: "TravelAPI",
        doc_file: "travel_booking.json",
        functions: travel::FUNCTIONS,
        new: || Box::new(travel::TravelApi::default()),
    },
    ToolClass {
        name: "VehicleControlAPI",
        doc_file: "vehicle_control.json",
        functions: vehicle::FUNCTIONS,
        new: || Box::new(vehicle::VehicleControlApi::default()),
    },
];
