//! The environment–API graph `G = (T, R, P)` of FunReason-MT: nodes are the tools of the BFCL
//! environments (from BFCL's own tool docs), edges `A → B` where an output field of `A` can feed
//! a parameter of `B` (same class), plus state preconditions (logins, the current directory,
//! the engine's interlocks). The legality rule `I(T) = 1{Prerequisite(T) ⊆ T_called}` is
//! [`ApiGraph::is_legal`]; distances toward a target drive the sampler.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use supo_bfcl::checker::tool_docs;

/// The eight BFCL multi-turn classes, in BFCL's order.
pub const CLASSES: &[&str] = &[
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TwitterAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "VehicleControlAPI",
];

/// Which output fields feed a parameter (`parameter`, `[output fields]`), within one class.
/// A parameter listed here and in no literal pool can only take an observed value: it makes the
/// tools producing those fields prerequisites.
pub const FEEDS: &[(&str, &[&str])] = &[
    ("file_name", &["current_directory_content"]),
    ("file_name1", &["current_directory_content"]),
    ("file_name2", &["current_directory_content"]),
    ("source", &["current_directory_content"]),
    ("folder", &["current_directory_content"]),
    ("dir_name", &["current_directory_content"]),
    ("destination", &["current_directory_content"]),
    ("tweet_id", &["id"]),
    ("username", &["username", "following_list"]),
    ("username_to_follow", &["username"]),
    ("username_to_unfollow", &["following_list"]),
    ("mentioned_usernames", &["username", "following_list"]),
    ("receiver_id", &["user_id"]),
    ("user", &["user_list"]),
    ("user_id", &["user_id"]),
    ("ticket_id", &["id"]),
    ("order_id", &["order_id", "id"]),
    ("symbol", &["symbol", "stock_list", "watchlist"]),
    ("stock", &["symbol", "stock_list"]),
    ("stocks", &["stock_list", "watchlist"]),
    ("access_token", &["access_token"]),
    ("card_id", &["credit_card_list", "card_id"]),
    ("booking_id", &["booking_id", "booking_history"]),
    ("insurance_id", &["insurance_id"]),
    ("travel_from", &["nearest_airport", "airports"]),
    ("travel_to", &["nearest_airport", "airports"]),
    ("cityA", &["zipcode"]),
    ("cityB", &["zipcode"]),
    ("distance", &["distance"]),
    ("gallon", &["gallon"]),
    ("liter", &["liter"]),
    ("a", &["result"]),
    ("b", &["result"]),
    ("number", &["result"]),
    ("value", &["result"]),
    ("part", &["result"]),
    ("whole", &["result"]),
];

/// State preconditions: (class, gate tool, guarded tools) — the guarded tools act on state the
/// gate sets up (a login, the engine's interlocks, the current directory).
pub const STATE_GATES: &[(&str, &str, &[&str])] = &[
    (
        "GorillaFileSystem",
        "cd",
        &[
            "cat", "cp", "diff", "grep", "mv", "rm", "rmdir", "sort", "tail", "wc", "touch",
            "mkdir", "echo",
        ],
    ),
    (
        "MessageAPI",
        "message_login",
        &[
            "send_message",
            "delete_message",
            "view_messages_sent",
            "add_contact",
            "search_messages",
            "get_message_stats",
        ],
    ),
    (
        "TwitterAPI",
        "authenticate_twitter",
        &[
            "post_tweet",
            "retweet",
            "comment",
            "mention",
            "follow_user",
            "unfollow_user",
            "list_all_following",
        ],
    ),
    (
        "TicketAPI",
        "ticket_login",
        &[
            "create_ticket",
            "get_user_tickets",
            "edit_ticket",
            "close_ticket",
            "resolve_ticket",
            "logout",
        ],
    ),
    (
        "TradingBot",
        "trading_login",
        &[
            "place_order",
            "cancel_order",
            "fund_account",
            "withdraw_funds",
            "get_account_info",
            "get_order_history",
            "get_transaction_history",
            "trading_logout",
        ],
    ),
    ("VehicleControlAPI", "lockDoors", &["startEngine"]),
    ("VehicleControlAPI", "pressBrakePedal", &["startEngine"]),
    ("VehicleControlAPI", "startEngine", &["setCruiseControl"]),
];

/// Parameters whose value is new information the user states (a new file's name, a message's
/// text): such a parameter is never a prerequisite even when listed in [`FEEDS`].
pub fn is_fresh_param(tool: &str, param: &str) -> bool {
    matches!(
        (tool, param),
        ("touch", "file_name")
            | ("echo", "file_name")
            | ("mkdir", "dir_name")
            | ("cp", "destination")
            | ("mv", "destination")
            | ("find", _)
            | ("get_user_tweets", "username")
            | ("get_user_stats", "username")
            | ("follow_user", "username_to_follow")
            | ("authenticate_twitter", "username")
            | ("get_user_id", "user")
            | ("add_contact", "user_name")
            | ("message_login", "user_id")
            | ("get_symbol_by_name", "name")
            | ("get_stock_info", "symbol")
            | ("add_to_watchlist", "stock")
            | ("place_order", "symbol")
            | ("get_flight_cost", _)
            | ("book_flight", "travel_from")
            | ("book_flight", "travel_to")
            | (_, "a")
            | (_, "b")
            | (_, "number")
            | (_, "value")
            | (_, "part")
            | (_, "whole")
            | (_, "distance")
            | (_, "gallon")
            | (_, "liter")
    )
}

/// The output fields that feed `param`, or an empty slice.
pub fn feeds(param: &str) -> &'static [&'static str] {
    FEEDS
        .iter()
        .find(|(p, _)| *p == param)
        .map_or(&[], |(_, f)| f)
}

/// One parameter of a tool, from its BFCL doc.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    /// The parameter name.
    pub name: String,
    /// BFCL's type name (`string`, `integer`, `float`, `boolean`, `array`, `dict`).
    pub ty: String,
    /// Whether the parameter is required.
    pub required: bool,
    /// The values its description lists after `[Enum]:`, if any.
    pub enum_values: Vec<serde_json::Value>,
}

/// One node of the graph: a tool and its BFCL doc.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// The BFCL class the tool belongs to.
    pub class: String,
    /// The tool (method) name.
    pub name: String,
    /// The tool's own description (the doc's text after `Tool description:`).
    pub description: String,
    /// Its parameters, in doc order.
    pub params: Vec<ParamSpec>,
    /// The top-level fields of its response.
    pub outputs: Vec<String>,
    /// BFCL's doc, as given.
    #[serde(skip)]
    pub doc: serde_json::Value,
}

/// How an edge arises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// An output field of the source can feed a parameter of the target (from the docs).
    Data,
    /// The source sets up state the target needs (login, current directory, interlocks).
    State,
}

/// An edge `from → to` of the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// Index of the source tool.
    pub from: usize,
    /// Index of the target tool.
    pub to: usize,
    /// Why the edge exists.
    pub kind: EdgeKind,
    /// `field→param` for a data edge, the gate's name for a state edge.
    pub via: String,
}

/// The environment–API graph over BFCL's multi-turn tools.
#[derive(Debug, Clone)]
pub struct ApiGraph {
    tools: Vec<ToolSpec>,
    edges: Vec<Edge>,
    /// `prereqs[t]`: for each required observed-only parameter of `t`, the tools producing it.
    prereqs: Vec<Vec<(String, Vec<usize>)>>,
}

impl ApiGraph {
    /// Builds the graph of `classes` from BFCL's tool docs (the installed `bfcl-eval`).
    pub fn from_bfcl_docs(classes: &[&str]) -> Result<ApiGraph, String> {
        let mut tools = Vec::new();
        for class in classes {
            let (docs, _) = tool_docs(&[class.to_string()], &serde_json::Value::Null)?;
            for doc in docs {
                tools.push(ToolSpec::from_doc(class, doc)?);
            }
        }
        Ok(ApiGraph::from_tools(tools))
    }

    /// Builds the graph over the given tools.
    pub fn from_tools(tools: Vec<ToolSpec>) -> ApiGraph {
        let mut edges = BTreeSet::new();
        let mut prereqs = vec![Vec::new(); tools.len()];
        for (b, tb) in tools.iter().enumerate() {
            for p in &tb.params {
                let fields = feeds(&p.name);
                let mut producers = Vec::new();
                for (a, ta) in tools.iter().enumerate() {
                    if ta.class != tb.class {
                        continue;
                    }
                    for f in fields.iter().filter(|f| ta.outputs.iter().any(|o| o == *f)) {
                        edges.insert(Edge {
                            from: a,
                            to: b,
                            kind: EdgeKind::Data,
                            via: format!("{f}→{}", p.name),
                        });
                        if !producers.contains(&a) {
                            producers.push(a);
                        }
                    }
                }
                if p.required && !producers.is_empty() && !is_fresh_param(&tb.name, &p.name) {
                    prereqs[b].push((p.name.clone(), producers));
                }
            }
        }
        for (class, gate, guarded) in STATE_GATES {
            let find = |n: &str| tools.iter().position(|t| t.class == *class && t.name == n);
            if let Some(g) = find(gate) {
                for t in guarded.iter().filter_map(|n| find(n)) {
                    edges.insert(Edge {
                        from: g,
                        to: t,
                        kind: EdgeKind::State,
                        via: gate.to_string(),
                    });
                }
            }
        }
        ApiGraph {
            tools,
            edges: edges.into_iter().collect(),
            prereqs,
        }
    }

    /// The tools (nodes).
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// The edges, sorted.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The index of `class.name`.
    pub fn index(&self, class: &str, name: &str) -> Option<usize> {
        self.tools
            .iter()
            .position(|t| t.class == class && t.name == name)
    }

    /// The index of the tool called `name` among `classes` (a later class wins, as in BFCL's
    /// executor).
    pub fn find(&self, classes: &[String], name: &str) -> Option<usize> {
        classes.iter().rev().find_map(|c| self.index(c, name))
    }

    /// The prerequisites of tool `t`: for each required parameter only an observed value can
    /// fill, the tools whose outputs provide it.
    pub fn prerequisites(&self, t: usize) -> &[(String, Vec<usize>)] {
        &self.prereqs[t]
    }

    /// The paper's legality rule: every prerequisite of `t` has one of its producers among the
    /// tools called so far.
    pub fn is_legal(&self, t: usize, called: &BTreeSet<usize>) -> bool {
        self.prereqs[t]
            .iter()
            .all(|(_, producers)| producers.iter().any(|p| called.contains(p)))
    }

    /// `dist[a]`: the number of edges on a shortest path `a ⇝ target` (none when unreachable).
    pub fn distances_to(&self, target: usize) -> Vec<Option<usize>> {
        let mut dist = vec![None; self.tools.len()];
        dist[target] = Some(0);
        let mut queue = VecDeque::from([target]);
        while let Some(b) = queue.pop_front() {
            let d = dist[b].unwrap_or(0);
            for e in self.edges.iter().filter(|e| e.to == b) {
                if dist[e.from].is_none() {
                    dist[e.from] = Some(d + 1);
                    queue.push_back(e.from);
                }
            }
        }
        dist
    }

    /// `depth[t]`: how many prerequisite layers lie under `t` (0 for a tool with none): the
    /// hardness the target choice favours.
    pub fn depths(&self) -> Vec<usize> {
        let n = self.tools.len();
        let mut depth = vec![0usize; n];
        for _ in 0..n {
            let mut changed = false;
            for t in 0..n {
                let d = self.prereqs[t]
                    .iter()
                    .map(|(_, ps)| ps.iter().map(|&p| depth[p] + 1).min().unwrap_or(0))
                    .max()
                    .unwrap_or(0)
                    .min(n);
                if d != depth[t] {
                    depth[t] = d;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        depth
    }

    /// The graph as JSON: nodes (class, name, prerequisites), edges (with kind and `via`), and
    /// for each edge how often the sampler used it (`observed`, from `counts`).
    pub fn to_json(&self, counts: &BTreeMap<(usize, usize), usize>) -> serde_json::Value {
        let name = |i: usize| format!("{}.{}", self.tools[i].class, self.tools[i].name);
        let nodes: Vec<serde_json::Value> = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let pre: Vec<serde_json::Value> = self.prereqs[i]
                    .iter()
                    .map(|(p, ps)| {
                        serde_json::json!({"param": p,
                            "producers": ps.iter().map(|&x| name(x)).collect::<Vec<_>>()})
                    })
                    .collect();
                serde_json::json!({"id": name(i), "class": t.class, "name": t.name,
                    "params": t.params.iter().map(|p| &p.name).collect::<Vec<_>>(),
                    "outputs": t.outputs, "prerequisites": pre})
            })
            .collect();
        let edges: Vec<serde_json::Value> = self
            .edges
            .iter()
            .map(|e| {
                serde_json::json!({"from": name(e.from), "to": name(e.to), "kind": e.kind,
                    "via": e.via, "observed": counts.get(&(e.from, e.to)).copied().unwrap_or(0)})
            })
            .collect();
        let observed_only: Vec<serde_json::Value> = counts
            .iter()
            .filter(|((a, b), _)| !self.edges.iter().any(|e| e.from == *a && e.to == *b))
            .map(|((a, b), n)| serde_json::json!({"from": name(*a), "to": name(*b), "observed": n}))
            .collect();
        serde_json::json!({"nodes": nodes, "edges": edges, "observed_only_edges": observed_only})
    }

    /// The graph in Graphviz DOT: one cluster per class, data edges solid, state edges dashed,
    /// edges the sampler used drawn bold.
    pub fn to_dot(&self, counts: &BTreeMap<(usize, usize), usize>) -> String {
        let mut out = String::from("digraph api_graph {\n  rankdir=LR;\n  node [shape=box];\n");
        let mut classes: Vec<&str> = self.tools.iter().map(|t| t.class.as_str()).collect();
        classes.dedup();
        for (k, class) in classes.iter().enumerate() {
            out.push_str(&format!(
                "  subgraph cluster_{k} {{\n    label=\"{class}\";\n"
            ));
            for t in self.tools.iter().filter(|t| t.class == *class) {
                out.push_str(&format!(
                    "    \"{}.{}\" [label=\"{}\"];\n",
                    class, t.name, t.name
                ));
            }
            out.push_str("  }\n");
        }
        for e in &self.edges {
            let (a, b) = (&self.tools[e.from], &self.tools[e.to]);
            let used = counts.get(&(e.from, e.to)).copied().unwrap_or(0);
            out.push_str(&format!(
                "  \"{}.{}\" -> \"{}.{}\" [label=\"{}\"{}{}];\n",
                a.class,
                a.name,
                b.class,
                b.name,
                e.via.replace('"', "'"),
                if e.kind == EdgeKind::State {
                    ", style=dashed"
                } else {
                    ""
                },
                if used > 0 { ", penwidth=2" } else { "" }
            ));
        }
        out.push_str("}\n");
        out
    }
}

impl ToolSpec {
    /// Reads one BFCL tool doc of `class`.
    pub fn from_doc(class: &str, doc: serde_json::Value) -> Result<ToolSpec, String> {
        let name = doc["name"]
            .as_str()
            .ok_or_else(|| format!("a {class} tool doc has no name"))?
            .to_string();
        let full = doc["description"].as_str().unwrap_or("");
        let description = full
            .split_once("Tool description:")
            .map_or(full, |(_, d)| d)
            .trim()
            .to_string();
        let required: Vec<&str> = doc["parameters"]["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let params = doc["parameters"]["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(p, spec)| ParamSpec {
                name: p.clone(),
                ty: spec["type"].as_str().unwrap_or("any").to_string(),
                required: required.contains(&p.as_str()),
                enum_values: enum_values(spec["description"].as_str().unwrap_or("")),
            })
            .collect();
        let outputs = doc["response"]["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        Ok(ToolSpec {
            class: class.to_string(),
            name,
            description,
            params,
            outputs,
            doc,
        })
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The values a BFCL parameter description lists after `[Enum]:` (a JSON array).
fn enum_values(description: &str) -> Vec<serde_json::Value> {
    let Some((_, rest)) = description.split_once("[Enum]:") else {
        return Vec::new();
    };
    let rest = rest.trim_start();
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<serde_json::Value>>(&rest[..=end]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(class: &str, name: &str, params: &[(&str, bool)], outputs: &[&str]) -> ToolSpec {
        ToolSpec {
            class: class.into(),
            name: name.into(),
            description: String::new(),
            params: params
                .iter()
                .map(|(p, r)| ParamSpec {
                    name: p.to_string(),
                    ty: "string".into(),
                    required: *r,
                    enum_values: Vec::new(),
                })
                .collect(),
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
            doc: serde_json::Value::Null,
        }
    }

    #[test]
    fn edges_legality_and_distances() {
        let v = "VehicleControlAPI";
        let g = ApiGraph::from_tools(vec![
            tool(
                v,
                "get_zipcode_based_on_city",
                &[("city", true)],
                &["zipcode"],
            ),
            tool(
                v,
                "estimate_distance",
                &[("cityA", true), ("cityB", true)],
                &["distance"],
            ),
            tool(
                v,
                "estimate_drive_feasibility_by_mileage",
                &[("distance", true)],
                &["canDrive"],
            ),
            tool(
                "GorillaFileSystem",
                "ls",
                &[],
                &["current_directory_content"],
            ),
        ]);
        assert!(g
            .edges()
            .iter()
            .any(|e| e.from == 0 && e.to == 1 && e.via == "zipcode→cityA"));
        // Files and vehicles never connect.
        assert!(!g.edges().iter().any(|e| e.from == 3 || e.to == 3));
        let none = BTreeSet::new();
        assert!(g.is_legal(0, &none));
        assert!(!g.is_legal(1, &none));
        assert!(g.is_legal(1, &BTreeSet::from([0])));
        // A distance can be typed in: not a prerequisite.
        assert!(g.is_legal(2, &none));
        assert_eq!(g.distances_to(2), vec![Some(2), Some(1), Some(0), None]);
        assert_eq!(g.depths(), vec![0, 1, 0, 0]);
        let dot = g.to_dot(&BTreeMap::new());
        assert!(dot.contains("\"VehicleControlAPI.get_zipcode_based_on_city\" -> "));
    }

    #[test]
    fn reads_enums() {
        assert_eq!(
            enum_values("The mode. [Enum]: [\"engage\", \"release\"]"),
            vec![serde_json::json!("engage"), serde_json::json!("release")]
        );
        assert!(enum_values("no enum").is_empty());
    }
}
