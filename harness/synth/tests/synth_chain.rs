//! The guided iterative chain's mechanics offline: a reasoning role that fails the BFCL check
//! gets the critic's hint and tries again, up to `K_max` times; unusable replies and bad
//! advanced tools are rejected. The roles here are scripted (a wrong first answer, then the
//! template's), standing in for an LLM; the chain, the executor and the checker are the real
//! ones. Needs no BFCL data (the file system runs without tool docs or long-context filler).

use supo_bfcl::checker::CheckEntry;
use supo_bfcl::value::PyValue;
use supo_synth::chain::{run_round, ChainInput, ChainReject, RoleCounts, Variant};
use supo_synth::dependency_steps;
use supo_synth::roles::{Role, RoleModel, RoleRequest, RoundContext, TemplateModel, TraceStep};

/// Template roles, except that `A_R` answers wrongly (or with garbage) until its prompt holds
/// `hints_needed` reviewer hints, and `A_T` can be made to reply with prose or nothing.
struct Scripted {
    hints_needed: usize,
    prose_tool: bool,
    garbage: bool,
    empty_tool: bool,
}

impl RoleModel for Scripted {
    fn mode(&self) -> &'static str {
        "llm"
    }

    fn complete(&mut self, req: &RoleRequest<'_>) -> Result<String, String> {
        match req.role {
            Role::Tooling if self.prose_tool => Ok("Makes a folder where the docs are.".into()),
            Role::Tooling if self.empty_tool => Ok("  ".into()),
            Role::Reasoning => {
                let hints = req.messages[0]
                    .content
                    .matches("Hint from a reviewer")
                    .count();
                if hints >= self.hints_needed {
                    TemplateModel.complete(req)
                } else if self.garbage {
                    Ok("I would rather not.".into())
                } else if req.step == 0 {
                    Ok(
                        "<think>guess</think><tool_call>[mkdir(dir_name='wrong')]</tool_call>"
                            .into(),
                    )
                } else {
                    Ok("<think>done</think><answer>ok</answer>".into())
                }
            }
            _ => TemplateModel.complete(req),
        }
    }
}

fn setup() -> (CheckEntry, RoundContext) {
    let entry = CheckEntry {
        id: "funreason_mt_0".into(),
        involved_classes: vec!["GorillaFileSystem".into()],
        initial_config: serde_json::json!({"GorillaFileSystem": {"root": {"ws": {
            "type": "directory", "contents": {
                "docs": {"type": "directory", "contents": {
                    "a.txt": {"type": "file", "content": "alpha\nbeta"}}}}}}}}),
    };
    let step =
        |tool: &str, call: &str, result: &str, fed: Vec<(String, Option<usize>)>| TraceStep {
            tool: tool.into(),
            description: format!("Run {tool}."),
            call: call.into(),
            result: result.into(),
            fed,
            literals: vec![],
            named: vec![],
            mutates: tool != "ls",
        };
    let trace = vec![
        step(
            "ls",
            "ls()",
            "{\"current_directory_content\": [\"docs\"]}",
            vec![],
        ),
        step(
            "cd",
            "cd(folder='docs')",
            "{\"current_working_directory\": \"docs\"}",
            vec![("folder".into(), Some(0))],
        ),
        step("mkdir", "mkdir(dir_name='out')", "None", vec![]),
    ];
    let mut trace = trace;
    trace[2].literals = vec![("dir_name".into(), PyValue::str("out"))];
    let ctx = RoundContext {
        target: "mkdir".into(),
        steps: dependency_steps(&trace),
        trace,
        withheld: None,
        noise: 0.0,
        seed: 1,
    };
    (entry, ctx)
}

fn input(entry: &CheckEntry, k_max: usize) -> ChainInput<'_> {
    ChainInput {
        entry,
        prior: &[],
        tool_docs: &[],
        variant: Variant::Base,
        k_max,
    }
}

#[test]
fn template_passes_at_once() {
    let (entry, ctx) = setup();
    assert_eq!(
        ctx.steps,
        vec![
            vec!["ls()".to_string()],
            vec!["cd(folder='docs')".into(), "mkdir(dir_name='out')".into()]
        ]
    );
    let mut counts = RoleCounts::new();
    let out = run_round(&mut TemplateModel, &ctx, &input(&entry, 3), &mut counts)
        .unwrap()
        .unwrap();
    assert_eq!(out.attempts, 1);
    assert!(out.hints.is_empty());
    assert_eq!(out.turns.len(), 1);
    assert_eq!(out.turns[0].steps.len(), 3, "two call steps and the answer");
    assert_eq!(counts.get("A_C"), None);
    assert_eq!(counts["A_R"], 3);
}

#[test]
fn critic_hint_repairs_a_wrong_answer() {
    let (entry, ctx) = setup();
    let mut model = Scripted {
        hints_needed: 2,
        prose_tool: false,
        garbage: false,
        empty_tool: false,
    };
    let mut counts = RoleCounts::new();
    let out = run_round(&mut model, &ctx, &input(&entry, 3), &mut counts)
        .unwrap()
        .unwrap();
    assert_eq!(out.attempts, 3);
    assert_eq!(out.hints.len(), 2);
    assert!(
        out.hints[0].contains("does not match the state"),
        "the hint comes from the checker's verdict: {}",
        out.hints[0]
    );
    assert_eq!(counts["A_C"], 2);
    // The kept transcript is the passing attempt.
    let calls: Vec<&String> = out.turns[0].steps.iter().flat_map(|s| &s.calls).collect();
    assert_eq!(
        calls,
        ["ls()", "cd(folder='docs')", "mkdir(dir_name='out')"]
    );
}

#[test]
fn rounds_failing_k_max_times_are_rejected() {
    let (entry, ctx) = setup();
    let mut counts = RoleCounts::new();
    let mut model = Scripted {
        hints_needed: 5,
        prose_tool: false,
        garbage: false,
        empty_tool: false,
    };
    let r = run_round(&mut model, &ctx, &input(&entry, 2), &mut counts).unwrap();
    assert_eq!(r.unwrap_err(), ChainReject::ChainFailed);
    assert_eq!(counts["A_C"], 1, "no hint after the last attempt");
    let mut model = Scripted {
        hints_needed: 1,
        prose_tool: false,
        garbage: true,
        empty_tool: false,
    };
    let mut counts = RoleCounts::new();
    let out = run_round(&mut model, &ctx, &input(&entry, 2), &mut counts)
        .unwrap()
        .unwrap();
    assert_eq!(out.attempts, 2);
    assert!(out.hints[0].contains("neither"), "{}", out.hints[0]);
    // Prose from A_T describes the trace's tool; an empty reply is rejected.
    let mut model = Scripted {
        hints_needed: 0,
        prose_tool: true,
        garbage: false,
        empty_tool: false,
    };
    let out = run_round(&mut model, &ctx, &input(&entry, 2), &mut RoleCounts::new())
        .unwrap()
        .unwrap();
    assert_eq!(out.advanced_tool["name"], "mkdir_adv");
    assert_eq!(
        out.advanced_tool["description"],
        "Makes a folder where the docs are."
    );
    let mut model = Scripted {
        hints_needed: 0,
        prose_tool: false,
        garbage: false,
        empty_tool: true,
    };
    let r = run_round(&mut model, &ctx, &input(&entry, 2), &mut RoleCounts::new()).unwrap();
    assert_eq!(r.unwrap_err(), ChainReject::BadAdvancedTool);
}

#[test]
fn missing_parameter_rounds_ask_first() {
    let (entry, mut ctx) = setup();
    ctx.withheld = Some(("dir_name".into(), PyValue::str("out")));
    let mut inp = input(&entry, 1);
    inp.variant = Variant::MissParam {
        param: "dir_name".into(),
        value: "out".into(),
    };
    let out = run_round(&mut TemplateModel, &ctx, &inp, &mut RoleCounts::new())
        .unwrap()
        .unwrap();
    assert!(!out.query.contains("out"), "{}", out.query);
    assert_eq!(out.turns.len(), 2);
    assert!(out.turns[0].ground_truth.is_empty());
    assert!(out.turns[0].steps[0]
        .answer
        .as_deref()
        .unwrap()
        .contains("dir_name"));
    assert!(out.turns[1].user.as_deref().unwrap().contains("out"));
    assert_eq!(out.turns[1].ground_truth.len(), 3);
}
