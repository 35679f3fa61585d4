//! BFCL's `VehicleControlAPI` (`vehicle_control.py`): engine, doors, climate, lights, brakes,
//! cruise control, navigation and a few conversions, with readings drawn from CPython's
//! `random.Random`. Attributes stay Python values, so scenario data of any shape behaves as in
//! the reference.

use super::pyops::{
    binop, check_scenario, compare, dict, dict_keys, eq, err_dict, getitem, is_str, iterate, join,
    no_attribute, no_method, scenario_get, seeded, setitem, to_float, BinOp, CmpOp, PyResult,
};
use crate::env::{Bound, CallArgs, MethodName, ToolEnv, ToolError};
use crate::locate::long_context_value;
use crate::parse::dict_insert;
use crate::pyrandom::PyRandom;
use crate::value::PyValue;

/// The public methods, in the order `inspect.getmembers` lists them.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "activateParkingBrake",
    "adjustClimateControl",
    "check_tire_pressure",
    "displayCarStatus",
    "display_log",
    "estimate_distance",
    "estimate_drive_feasibility_by_mileage",
    "fillFuelTank",
    "find_nearest_tire_shop",
    "gallon_to_liter",
    "get_current_speed",
    "get_outside_temperature_from_google",
    "get_outside_temperature_from_weather_com",
    "get_zipcode_based_on_city",
    "liter_to_gallon",
    "lockDoors",
    "pressBrakePedal",
    "releaseBrakePedal",
    "setCruiseControl",
    "setHeadlights",
    "set_navigation",
    "startEngine",
];

/// `DEFAULT_STATE["random_seed"]`.
const DEFAULT_SEED: i64 = 141_053;

/// `estimate_distance`'s table: two zip codes (either order) and their distance.
const DISTANCES: &[(&str, &str, f64)] = &[
    ("83214", "74532", 750.0),
    ("56108", "62947", 320.0),
    ("71354", "83462", 450.0),
    ("47329", "52013", 290.0),
    ("69238", "51479", 630.0),
    ("94016", "83214", 980.0),
    ("94016", "94704", 600.0),
    ("94704", "08540", 2550.0),
    ("94016", "08540", 1950.0),
    ("62947", "47329", 1053.0),
    ("94016", "62947", 780.0),
    ("74532", "94016", 880.0),
];

/// `get_zipcode_based_on_city`'s table.
const ZIPCODES: &[(&str, &str)] = &[
    ("Rivermist", "83214"),
    ("Stonebrook", "74532"),
    ("Maplecrest", "56108"),
    ("Silverpine", "62947"),
    ("Shadowridge", "71354"),
    ("Sunset Valley", "83462"),
    ("Oakendale", "47329"),
    ("Willowbend", "52013"),
    ("Crescent Hollow", "69238"),
    ("Autumnville", "51479"),
    ("San Francisco", "94016"),
];

fn float(f: f64) -> PyValue {
    PyValue::Float(f)
}

/// BFCL's `VehicleControlAPI`.
#[derive(Debug, Clone)]
pub struct VehicleControlApi {
    fuel_level: PyValue,
    battery_voltage: PyValue,
    engine_state: PyValue,
    remaining_unlocked_doors: PyValue,
    door_status: PyValue,
    ac_temperature: PyValue,
    fan_speed: PyValue,
    ac_mode: PyValue,
    humidity_level: PyValue,
    head_light_status: PyValue,
    parking_brake_status: PyValue,
    parking_brake_force: PyValue,
    slope_angle: PyValue,
    brake_pedal_status: PyValue,
    brake_pedal_force: PyValue,
    distance_to_next_vehicle: PyValue,
    cruise_status: PyValue,
    destination: PyValue,
    front_left_tire_pressure: PyValue,
    front_right_tire_pressure: PyValue,
    rear_left_tire_pressure: PyValue,
    rear_right_tire_pressure: PyValue,
    long_context: bool,
    random: PyRandom,
}

/// `DEFAULT_STATE[key]` of the reference (`None` for a key it does not have), built only
/// for the keys a scenario leaves out.
fn default_state(key: &str) -> PyValue {
    match key {
        "fuelLevel" => float(0.0),
        "batteryVoltage" => float(12.6),
        "engineState" => PyValue::str("stopped"),
        "doorStatus" => dict(
            ["driver", "passenger", "rear_left", "rear_right"]
                .into_iter()
                .map(|door| (door, PyValue::str("unlocked")))
                .collect(),
        ),
        "acTemperature" => float(25.0),
        "fanSpeed" => PyValue::Int(50),
        "acMode" => PyValue::str("auto"),
        "humidityLevel" => float(50.0),
        "headLightStatus" => PyValue::str("off"),
        "parkingBrakeStatus" => PyValue::str("released"),
        "parkingBrakeForce" => float(0.0),
        "slopeAngle" => float(0.0),
        "brakePedalStatus" => PyValue::str("released"),
        "brakePedalForce" => float(0.0),
        "distanceToNextVehicle" => float(50.0),
        "cruiseStatus" => PyValue::str("inactive"),
        "destination" => PyValue::str("None"),
        "frontLeftTirePressure" => float(32.0),
        "frontRightTirePressure" => float(32.0),
        "rearLeftTirePressure" => float(30.0),
        "rearRightTirePressure" => float(30.0),
        "random_seed" => PyValue::Int(DEFAULT_SEED),
        _ => PyValue::None,
    }
}

impl Default for VehicleControlApi {
    /// The state `_load_scenario({})` gives (the reference's `DEFAULT_STATE`).
    fn default() -> Self {
        VehicleControlApi {
            fuel_level: default_state("fuelLevel"),
            battery_voltage: default_state("batteryVoltage"),
            engine_state: default_state("engineState"),
            remaining_unlocked_doors: PyValue::Int(4),
            door_status: default_state("doorStatus"),
            ac_temperature: default_state("acTemperature"),
            fan_speed: default_state("fanSpeed"),
            ac_mode: default_state("acMode"),
            humidity_level: default_state("humidityLevel"),
            head_light_status: default_state("headLightStatus"),
            parking_brake_status: default_state("parkingBrakeStatus"),
            parking_brake_force: default_state("parkingBrakeForce"),
            slope_angle: default_state("slopeAngle"),
            brake_pedal_status: default_state("brakePedalStatus"),
            brake_pedal_force: default_state("brakePedalForce"),
            distance_to_next_vehicle: default_state("distanceToNextVehicle"),
            cruise_status: default_state("cruiseStatus"),
            destination: default_state("destination"),
            front_left_tire_pressure: default_state("frontLeftTirePressure"),
            front_right_tire_pressure: default_state("frontRightTirePressure"),
            rear_left_tire_pressure: default_state("rearLeftTirePressure"),
            rear_right_tire_pressure: default_state("rearRightTirePressure"),
            long_context: false,
            random: PyRandom::new(DEFAULT_SEED),
        }
    }
}

/// `not (lo <= v <= hi)` with Python's chained comparison.
fn outside(v: &PyValue, lo: i64, hi: i64) -> PyResult<bool> {
    Ok(!(compare(&PyValue::Int(lo), v, CmpOp::Le)? && compare(v, &PyValue::Int(hi), CmpOp::Le)?))
}

impl VehicleControlApi {
    fn door_items(&self) -> PyResult<&[(PyValue, PyValue)]> {
        self.door_status
            .as_dict()
            .ok_or_else(|| no_attribute(&self.door_status, "items"))
    }

    fn start_engine(&mut self, b: &Bound) -> PyResult<PyValue> {
        let mode = b.get("ignitionMode");
        if is_str(mode, "STOP") {
            self.engine_state = PyValue::str("stopped");
        }
        if compare(&self.remaining_unlocked_doors, &PyValue::Int(0), CmpOp::Gt)? {
            let unlocked: Vec<PyValue> = self
                .door_items()?
                .iter()
                .filter(|(_, status)| is_str(status, "unlocked"))
                .map(|(door, _)| door.clone())
                .collect();
            return Ok(err_dict(format!(
                "All doors must be locked before starting the engine. Here are the unlocked \
                 doors: {}",
                join(", ", &unlocked)?
            )));
        }
        if !is_str(&self.brake_pedal_status, "pressed") {
            return Ok(err_dict(
                "Brake pedal needs to be pressed when starting the engine.",
            ));
        }
        if !eq(&self.brake_pedal_force, &float(1000.0)) {
            return Ok(err_dict(
                "Must press the brake fully before starting the engine.",
            ));
        }
        if compare(&self.fuel_level, &float(0.0), CmpOp::Lt)? {
            return Ok(err_dict("Fuel tank is empty."));
        }
        if !is_str(mode, "START") {
            return Ok(err_dict("Invalid ignition mode."));
        }
        self.engine_state = PyValue::str("running");
        Ok(dict(vec![
            ("engineState", self.engine_state.clone()),
            ("fuelLevel", self.fuel_level.clone()),
            ("batteryVoltage", self.battery_voltage.clone()),
        ]))
    }

    fn fill_fuel_tank(&mut self, b: &Bound) -> PyResult<PyValue> {
        let amount = b.get("fuelAmount");
        if compare(amount, &PyValue::Int(0), CmpOp::Lt)? {
            return Ok(err_dict("Fuel amount cannot be negative."));
        }
        let total = binop(&self.fuel_level, amount, BinOp::Add, false)?;
        if compare(&total, &PyValue::Int(50), CmpOp::Gt)? {
            return Ok(err_dict("Cannot fill gas above the tank capacity."));
        }
        if compare(&total, &float(0.0), CmpOp::Lt)? {
            return Ok(err_dict("Fuel tank is empty. Min fuel level is 0 gallons."));
        }
        self.fuel_level = binop(&self.fuel_level, amount, BinOp::Add, true)?;
        Ok(dict(vec![("fuelLevel", self.fuel_level.clone())]))
    }

    fn lock_doors(&mut self, b: &Bound) -> PyResult<PyValue> {
        let unlock = b.get("unlock").truthy();
        let (target, step, op) = if unlock {
            ("unlocked", PyValue::Int(1), BinOp::Add)
        } else {
            ("locked", PyValue::Int(1), BinOp::Sub)
        };
        for d in iterate(b.get("door"))? {
            if is_str(&*getitem(&self.door_status, &d)?, target) {
                continue;
            }
            setitem(&mut self.door_status, d, PyValue::str(target))?;
            self.remaining_unlocked_doors = binop(&self.remaining_unlocked_doors, &step, op, true)?;
        }
        Ok(dict(vec![
            ("lockStatus", PyValue::str(target)),
            (
                "remainingUnlockedDoors",
                self.remaining_unlocked_doors.clone(),
            ),
        ]))
    }

    fn adjust_climate_control(&mut self, b: &Bound) -> PyResult<PyValue> {
        let (temperature, fan_speed) = (b.get("temperature"), b.get("fanSpeed"));
        if outside(fan_speed, 0, 100)? {
            return Ok(err_dict("Fan speed must be between 0 and 100."));
        }
        self.ac_temperature = temperature.clone();
        if is_str(b.get("unit"), "fahrenheit") {
            let t = binop(temperature, &PyValue::Int(32), BinOp::Sub, false)?;
            let t = binop(&t, &PyValue::Int(5), BinOp::Mul, false)?;
            self.ac_temperature = binop(&t, &PyValue::Int(9), BinOp::Div, false)?;
        }
        self.fan_speed = fan_speed.clone();
        self.ac_mode = b.get("mode").clone();
        Ok(dict(vec![
            ("currentACTemperature", temperature.clone()),
            ("climateMode", b.get("mode").clone()),
            ("humidityLevel", self.humidity_level.clone()),
        ]))
    }

    fn outside_temperature(&mut self) -> PyResult<PyValue> {
        let t = float(self.random.uniform(-10.0, 40.0));
        if self.long_context {
            let mut weather = long_context_value("LONG_WEATHER_EXTENSION")?
                .as_dict()
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            dict_insert(&mut weather, PyValue::str("outsideTemperature"), t).map_err(ToolError)?;
            return Ok(PyValue::Dict(weather));
        }
        Ok(dict(vec![("outsideTemperature", t)]))
    }

    fn display_car_status(&self, b: &Bound) -> PyResult<PyValue> {
        let option = b.get("option");
        let mut status: Vec<(&str, PyValue)> = Vec::new();
        if self.long_context {
            status.push((
                "metadata",
                long_context_value("CAR_STATUS_METADATA_EXTENSION")?.clone(),
            ));
        }
        let opt = |name: &str| is_str(option, name);
        if opt("fuel") {
            status.push(("fuelLevel", self.fuel_level.clone()));
        } else if opt("battery") {
            status.push(("batteryVoltage", self.battery_voltage.clone()));
        } else if opt("doors") {
            status.push(("doorStatus", self.door_status.clone()));
        } else if opt("climate") {
            status.push(("currentACTemperature", self.ac_temperature.clone()));
            status.push(("fanSpeed", self.fan_speed.clone()));
            status.push(("climateMode", self.ac_mode.clone()));
            status.push(("humidityLevel", self.humidity_level.clone()));
        } else if opt("headlights") {
            status.push(("headlightStatus", self.head_light_status.clone()));
        } else if opt("parkingBrake") {
            status.push(("parkingBrakeStatus", self.parking_brake_status.clone()));
            status.push(("parkingBrakeForce", self.parking_brake_force.clone()));
            status.push(("slopeAngle", self.slope_angle.clone()));
        } else if opt("brakePedal") {
            status.push(("brakePedalStatus", self.brake_pedal_status.clone()));
            status.push(("brakePedalForce", self.brake_pedal_force.clone()));
        } else if opt("engine") {
            status.push(("engineState", self.engine_state.clone()));
        } else {
            status.push(("error", PyValue::str("Invalid option")));
        }
        Ok(dict(status))
    }

    fn activate_parking_brake(&mut self, b: &Bound) -> PyResult<PyValue> {
        let mode = b.get("mode");
        let (status, force) = if is_str(mode, "engage") {
            ("engaged", 500.0)
        } else if is_str(mode, "release") {
            ("released", 0.0)
        } else {
            return Ok(err_dict("Invalid mode"));
        };
        self.parking_brake_status = PyValue::str(status);
        self.parking_brake_force = float(force);
        self.slope_angle = float(10.0);
        let mut out = Vec::new();
        if self.long_context {
            out.push((
                "parkingBrakeInstruction",
                long_context_value("PARKING_BRAKE_INSTRUCTION")?.clone(),
            ));
        }
        out.push(("parkingBrakeStatus", PyValue::str(status)));
        out.push(("_parkingBrakeForce", float(force)));
        out.push(("_slopeAngle", float(10.0)));
        Ok(dict(out))
    }

    fn press_brake_pedal(&mut self, b: &Bound) -> PyResult<PyValue> {
        let position = b.get("pedalPosition");
        if outside(position, 0, 1)? {
            return Ok(err_dict("Pedal position must be between 0 and 1."));
        }
        if eq(position, &PyValue::Int(0)) {
            return Ok(self.release_brake_pedal());
        }
        let force = binop(position, &PyValue::Int(1000), BinOp::Mul, false)?;
        self.brake_pedal_status = PyValue::str("pressed");
        self.brake_pedal_force = force.clone();
        Ok(dict(vec![
            ("brakePedalStatus", PyValue::str("pressed")),
            ("brakePedalForce", float(to_float(&force)?)),
        ]))
    }

    fn release_brake_pedal(&mut self) -> PyValue {
        self.brake_pedal_status = PyValue::str("released");
        self.brake_pedal_force = float(0.0);
        dict(vec![
            ("brakePedalStatus", PyValue::str("released")),
            ("brakePedalForce", float(0.0)),
        ])
    }

    fn set_cruise_control(&mut self, b: &Bound) -> PyResult<PyValue> {
        let distance = to_float(b.get("distanceToNextVehicle"))?;
        let speed = to_float(b.get("speed"))?;
        if is_str(&self.engine_state, "stopped") {
            return Ok(err_dict(
                "Start the engine before activating the cruise control.",
            ));
        }
        self.distance_to_next_vehicle = float(distance);
        let status = if b.get("activate").truthy() {
            if !(0.0..=120.0).contains(&speed) || speed % 5.0 != 0.0 {
                return Ok(err_dict("Invalid speed"));
            }
            "active"
        } else {
            "inactive"
        };
        self.cruise_status = PyValue::str(status);
        Ok(dict(vec![
            ("cruiseStatus", PyValue::str(status)),
            ("currentSpeed", float(speed)),
            ("distanceToNextVehicle", float(distance)),
        ]))
    }

    fn estimate_distance(&self, b: &Bound) -> PyResult<PyValue> {
        let (a, c) = (b.get("cityA"), b.get("cityB"));
        let found = DISTANCES
            .iter()
            .find(|(x, y, _)| (is_str(a, x) && is_str(c, y)) || (is_str(a, y) && is_str(c, x)));
        let mut out = match found {
            Some(&(_, _, d)) => vec![("distance", float(d))],
            None => vec![("error", PyValue::str("distance not found in database."))],
        };
        if self.long_context {
            out.push((
                "intermediaryCities",
                long_context_value("INTERMEDIARY_CITIES")?.clone(),
            ));
        }
        Ok(dict(out))
    }

    fn check_tire_pressure(&self) -> PyResult<PyValue> {
        let mut sum = binop(
            &self.front_left_tire_pressure,
            &self.front_right_tire_pressure,
            BinOp::Add,
            false,
        )?;
        sum = binop(&sum, &self.rear_left_tire_pressure, BinOp::Add, false)?;
        sum = binop(&sum, &self.rear_right_tire_pressure, BinOp::Add, false)?;
        let mean = binop(&sum, &PyValue::Int(4), BinOp::Div, false)?;
        let healthy = !outside(&mean, 30, 35)?;
        let car_info = if self.long_context {
            long_context_value("CAR_STATUS_METADATA_EXTENSION")?.clone()
        } else {
            PyValue::Dict(Vec::new())
        };
        Ok(dict(vec![
            (
                "frontLeftTirePressure",
                self.front_left_tire_pressure.clone(),
            ),
            (
                "frontRightTirePressure",
                self.front_right_tire_pressure.clone(),
            ),
            ("rearLeftTirePressure", self.rear_left_tire_pressure.clone()),
            (
                "rearRightTirePressure",
                self.rear_right_tire_pressure.clone(),
            ),
            ("healthy_tire_pressure", PyValue::Bool(healthy)),
            ("car_info", car_info),
        ]))
    }
}

impl ToolEnv for VehicleControlApi {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        long_context: bool,
    ) -> Result<(), ToolError> {
        check_scenario(config)?;
        let get = |key: &str| scenario_get(config, key).unwrap_or_else(|| default_state(key));
        self.random = seeded(&get("random_seed"))?;
        self.fuel_level = get("fuelLevel");
        self.battery_voltage = get("batteryVoltage");
        self.engine_state = get("engineState");
        self.door_status = get("doorStatus");
        let mut locked = 0;
        for door in dict_keys(&self.door_status)? {
            if is_str(&*getitem(&self.door_status, &door)?, "locked") {
                locked += 1;
            }
        }
        self.remaining_unlocked_doors = PyValue::Int(4 - locked);
        self.ac_temperature = get("acTemperature");
        self.fan_speed = get("fanSpeed");
        self.ac_mode = get("acMode");
        self.humidity_level = get("humidityLevel");
        self.head_light_status = get("headLightStatus");
        self.parking_brake_status = get("parkingBrakeStatus");
        self.parking_brake_force = get("parkingBrakeForce");
        self.slope_angle = get("slopeAngle");
        self.brake_pedal_status = get("brakePedalStatus");
        self.brake_pedal_force = get("brakePedalForce");
        self.distance_to_next_vehicle = get("distanceToNextVehicle");
        self.cruise_status = get("cruiseStatus");
        self.destination = get("destination");
        self.front_left_tire_pressure = get("frontLeftTirePressure");
        self.front_right_tire_pressure = get("frontRightTirePressure");
        self.rear_left_tire_pressure = get("rearLeftTirePressure");
        self.rear_right_tire_pressure = get("rearRightTirePressure");
        self.long_context = long_context;
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let bind = |params: &[(&'static str, Option<PyValue>)]| {
            args.bind(&MethodName::new("VehicleControlAPI", func), params)
        };
        match func {
            "startEngine" => self.start_engine(&bind(&[("ignitionMode", None)])?),
            "fillFuelTank" => self.fill_fuel_tank(&bind(&[("fuelAmount", None)])?),
            "lockDoors" => self.lock_doors(&bind(&[("unlock", None), ("door", None)])?),
            "adjustClimateControl" => self.adjust_climate_control(&bind(&[
                ("temperature", None),
                ("unit", Some(PyValue::str("celsius"))),
                ("fanSpeed", Some(PyValue::Int(50))),
                ("mode", Some(PyValue::str("auto"))),
            ])?),
            "get_outside_temperature_from_google" => {
                bind(&[])?;
                self.outside_temperature()
            }
            "get_outside_temperature_from_weather_com" => {
                bind(&[])?;
                Ok(dict(vec![("error", PyValue::Int(404))]))
            }
            "setHeadlights" => {
                let b = bind(&[("mode", None)])?;
                let mode = b.get("mode");
                if !["on", "off", "auto"].iter().any(|m| is_str(mode, m)) {
                    return Ok(err_dict("Invalid headlight mode."));
                }
                let status = if is_str(mode, "on") { "on" } else { "off" };
                self.head_light_status = PyValue::str(status);
                Ok(dict(vec![("headlightStatus", PyValue::str(status))]))
            }
            "displayCarStatus" => self.display_car_status(&bind(&[("option", None)])?),
            "activateParkingBrake" => self.activate_parking_brake(&bind(&[("mode", None)])?),
            "pressBrakePedal" => self.press_brake_pedal(&bind(&[("pedalPosition", None)])?),
            "releaseBrakePedal" => {
                bind(&[])?;
                Ok(self.release_brake_pedal())
            }
            "setCruiseControl" => self.set_cruise_control(&bind(&[
                ("speed", None),
                ("activate", None),
                ("distanceToNextVehicle", None),
            ])?),
            "get_current_speed" => {
                bind(&[])?;
                Ok(dict(vec![(
                    "currentSpeed",
                    float(self.random.uniform(0.0, 120.0)),
                )]))
            }
            "display_log" => {
                let b = bind(&[("messages", None)])?;
                Ok(dict(vec![("log", b.get("messages").clone())]))
            }
            "estimate_drive_feasibility_by_mileage" => {
                let b = bind(&[("distance", None)])?;
                let range = binop(&self.fuel_level, &float(20.0), BinOp::Mul, false)?;
                let short = compare(&range, b.get("distance"), CmpOp::Lt)?;
                Ok(dict(vec![("canDrive", PyValue::Bool(!short))]))
            }
            "liter_to_gallon" => {
                let b = bind(&[("liter", None)])?;
                let v = binop(b.get("liter"), &float(0.264172), BinOp::Mul, false)?;
                Ok(dict(vec![("gallon", v)]))
            }
            "gallon_to_liter" => {
                let b = bind(&[("gallon", None)])?;
                let v = binop(b.get("gallon"), &float(3.78541), BinOp::Mul, false)?;
                Ok(dict(vec![("liter", v)]))
            }
            "estimate_distance" => {
                self.estimate_distance(&bind(&[("cityA", None), ("cityB", None)])?)
            }
            "get_zipcode_based_on_city" => {
                let b = bind(&[("city", None)])?;
                let city = b.get("city");
                let zip = ZIPCODES
                    .iter()
                    .find(|(name, _)| is_str(city, name))
                    .map_or("00000", |(_, z)| z);
                Ok(dict(vec![("zipcode", PyValue::str(zip))]))
            }
            "set_navigation" => {
                let b = bind(&[("destination", None)])?;
                self.destination = b.get("destination").clone();
                let text = binop(
                    &PyValue::str("Navigating to "),
                    b.get("destination"),
                    BinOp::Add,
                    false,
                )?;
                Ok(dict(vec![("status", text)]))
            }
            "check_tire_pressure" => {
                bind(&[])?;
                self.check_tire_pressure()
            }
            "find_nearest_tire_shop" => {
                bind(&[])?;
                Ok(dict(vec![(
                    "shopLocation",
                    PyValue::str("456 Oakwood Avenue, Rivermist, 83214"),
                )]))
            }
            other => Err(no_method("VehicleControlAPI", other)),
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "fuelLevel": self.fuel_level.to_json(),
            "batteryVoltage": self.battery_voltage.to_json(),
            "engine_state": self.engine_state.to_json(),
            "remainingUnlockedDoors": self.remaining_unlocked_doors.to_json(),
            "doorStatus": self.door_status.to_json(),
            "acTemperature": self.ac_temperature.to_json(),
            "fanSpeed": self.fan_speed.to_json(),
            "acMode": self.ac_mode.to_json(),
            "humidityLevel": self.humidity_level.to_json(),
            "headLightStatus": self.head_light_status.to_json(),
            "parkingBrakeStatus": self.parking_brake_status.to_json(),
            "brakePedalStatus": self.brake_pedal_status.to_json(),
            "distanceToNextVehicle": self.distance_to_next_vehicle.to_json(),
            "cruiseStatus": self.cruise_status.to_json(),
            "destination": self.destination.to_json(),
            "frontLeftTirePressure": self.front_left_tire_pressure.to_json(),
            "frontRightTirePressure": self.front_right_tire_pressure.to_json(),
            "rearLeftTirePressure": self.rear_left_tire_pressure.to_json(),
            "rearRightTirePressure": self.rear_right_tire_pressure.to_json(),
            "long_context": self.long_context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_then_engine() {
        let mut v = VehicleControlApi::default();
        v.load_scenario(&serde_json::json!({"fuelLevel": 10}), false)
            .unwrap();
        let doors = PyValue::List(
            ["driver", "passenger", "rear_left", "rear_right"]
                .iter()
                .map(|d| PyValue::str(*d))
                .collect(),
        );
        v.call(
            "lockDoors",
            &CallArgs::keywords(&[("unlock", false.into()), ("door", doors)]),
        )
        .unwrap();
        v.call(
            "pressBrakePedal",
            &CallArgs::keywords(&[("pedalPosition", PyValue::Int(1))]),
        )
        .unwrap();
        let r = v
            .call(
                "startEngine",
                &CallArgs::keywords(&[("ignitionMode", "START".into())]),
            )
            .unwrap();
        assert_eq!(
            r.json_dumps(),
            "{\"engineState\": \"running\", \"fuelLevel\": 10, \"batteryVoltage\": 12.6}"
        );
        let e = v
            .call(
                "set_navigation",
                &CallArgs::keywords(&[("destination", PyValue::Int(3))]),
            )
            .unwrap_err();
        assert_eq!(e.0, "can only concatenate str (not \"int\") to str");
        assert_eq!(v.state()["destination"], serde_json::json!(3));
    }
}
