//! The context manager against an independent transcription of the paper's Algorithm 2, and
//! the working-context bound `L + |v_sum| + L_A`.

use proptest::prelude::*;
use supo_core::context::{ContextConfig, Decision, TrajectoryBuilder};
use supo_core::strategies;
use supo_core::{FinishReason, Role, Turn};

/// One move of the agent: an action of `a` tokens answered by an observation of `o` tokens,
/// or a final answer.
#[derive(Debug, Clone, Copy)]
struct Move {
    a: usize,
    o: usize,
    answer: bool,
}

/// A segment as Algorithm 2 sees it.
#[derive(Debug, Clone, PartialEq)]
struct RefSegment {
    prompt_len: usize,
    /// Kept (action, observation) lengths; an answer is `(a, 0)` flagged by `answered`.
    kept: Vec<(usize, usize)>,
    answered: bool,
    summary: Option<usize>,
}

/// Algorithm 2 of the paper, transcribed directly: act while the context stays below `L`; a
/// pair that reaches `L` is discarded and, if fewer than `S` summaries were made, the agent
/// summarises and restarts from `p ⊕ summary`.
fn algorithm2(
    cfg: &ContextConfig,
    prompt: usize,
    instruction: usize,
    prefix: usize,
    moves: &[Move],
    summaries: &[usize],
) -> (Vec<RefSegment>, Option<FinishReason>) {
    let (w, l) = (cfg.working_context, cfg.threshold);
    let mut segs = vec![RefSegment {
        prompt_len: prompt,
        kept: vec![],
        answered: false,
        summary: None,
    }];
    if prompt >= l {
        return (segs, Some(FinishReason::ContextOverflow));
    }
    let mut ctx = prompt;
    let mut next_summary = summaries.iter();
    for (step, m) in moves.iter().enumerate() {
        let step = step + 1;
        if ctx + m.a > w {
            return (segs, Some(FinishReason::ContextOverflow));
        }
        if m.answer {
            segs.last_mut().unwrap().kept.push((m.a, 0));
            segs.last_mut().unwrap().answered = true;
            return (segs, Some(FinishReason::Answered));
        }
        if ctx + m.a + m.o < l {
            ctx += m.a + m.o;
            segs.last_mut().unwrap().kept.push((m.a, m.o));
            if step >= cfg.max_steps {
                return (segs, Some(FinishReason::MaxSteps));
            }
            continue;
        }
        if step >= cfg.max_steps {
            return (segs, Some(FinishReason::MaxSteps));
        }
        if segs.len() > cfg.max_summaries {
            return (segs, Some(FinishReason::MaxSummaries));
        }
        let Some(&s) = next_summary.next() else {
            return (segs, None);
        };
        if ctx + instruction + s > w {
            return (segs, Some(FinishReason::ContextOverflow));
        }
        segs.last_mut().unwrap().summary = Some(s);
        ctx = prompt + prefix + s;
        segs.push(RefSegment {
            prompt_len: ctx,
            kept: vec![],
            answered: false,
            summary: None,
        });
        if ctx >= l {
            return (segs, Some(FinishReason::ContextOverflow));
        }
    }
    (segs, None)
}

fn tokens(n: usize, tag: u32) -> Vec<u32> {
    (0..n as u32).map(|i| tag * 1000 + i).collect()
}

fn agent(n: usize, tag: u32) -> Turn {
    Turn::agent(tokens(n, tag), vec![-1.0; n])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn segments_match_algorithm2_and_context_stays_bounded(
        cfg in strategies::context_config(20, 300),
        prompt_frac in 0.05f64..0.6,
        instruction in 1usize..12,
        prefix in 0usize..5,
        moves in proptest::collection::vec((1usize..40, 0usize..120, proptest::bool::weighted(0.04)), 1..60),
        summaries in proptest::collection::vec(1usize..60, 0..10),
    ) {
        let moves: Vec<Move> = moves.into_iter().map(|(a, o, answer)| Move { a, o, answer }).collect();
        let prompt = ((cfg.working_context as f64 * prompt_frac) as usize).max(1);
        let (want, want_finish) = algorithm2(&cfg, prompt, instruction, prefix, &moves, &summaries);

        let mut b = TrajectoryBuilder::new(cfg.clone(), tokens(prompt, 1), tokens(instruction, 2), tokens(prefix, 3)).unwrap();
        let mut next_summary = summaries.iter();
        let mut longest_generation = 0;
        let mut finish = b.manager().finished();
        let mut tag = 10;
        'episode: for m in &moves {
            if finish.is_some() { break; }
            tag += 1;
            longest_generation = longest_generation.max(m.a);
            let d = if m.answer {
                b.push_answer(agent(m.a, tag)).unwrap()
            } else {
                b.push_step(agent(m.a, tag), Turn::other(Role::Tool, tokens(m.o, tag))).unwrap()
            };
            match d {
                Decision::Continue => {}
                Decision::Stop(r) => finish = Some(r),
                Decision::Summarize => {
                    let Some(&s) = next_summary.next() else { break 'episode };
                    longest_generation = longest_generation.max(s);
                    if let Decision::Stop(r) = b.push_summary(agent(s, tag + 500)).unwrap() {
                        finish = Some(r);
                    }
                }
            }
            // The context the policy sees never exceeds L (between generations).
            prop_assert!(b.context().len() < cfg.threshold || finish.is_some());
        }
        prop_assert_eq!(finish, want_finish);
        let bound = cfg.context_bound(instruction, longest_generation);
        prop_assert!(b.manager().peak() <= bound, "peak {} > bound {bound}", b.manager().peak());

        let traj = b.finish("g".into(), 0.0, finish.or(Some(FinishReason::EnvError))).unwrap();
        let got: Vec<RefSegment> = traj.segments.iter().map(|s| {
            let mut kept = vec![];
            let mut answered = false;
            let mut turns = s.turns.iter().enumerate().peekable();
            while let Some((i, t)) = turns.next() {
                if Some(i) == s.summary_turn || t.role == Role::User { continue; }
                match turns.peek() {
                    Some((_, o)) if o.role == Role::Tool => { kept.push((t.tokens.len(), o.tokens.len())); turns.next(); }
                    _ => { kept.push((t.tokens.len(), 0)); answered = true; }
                }
            }
            RefSegment { prompt_len: s.prompt.len(), kept, answered, summary: s.summary().map(|x| x.len()) }
        }).collect();
        // A trailing empty segment opened by the last summary is dropped by `finish`.
        let want: Vec<RefSegment> = want.into_iter().filter(|s| !(s.kept.is_empty() && s.summary.is_none())).collect();
        let got: Vec<RefSegment> = got.into_iter().filter(|s| !(s.kept.is_empty() && s.summary.is_none())).collect();
        prop_assert_eq!(got, want);
        // Every summary segment closes with the instruction followed by the summary.
        for s in &traj.segments {
            if let Some(i) = s.summary_turn {
                prop_assert!(i >= 1 && s.turns[i - 1].role == Role::User && s.turns[i - 1].tokens.len() == instruction);
            }
        }
    }
}

#[test]
fn rebuilt_prompt_uses_the_template() {
    let cfg = ContextConfig::new(100);
    let p = cfg.rebuild_prompt("Task: find x.", "x is in file b.");
    assert_eq!(p, "Task: find x.\n\n...We are in the following stage of solving the problem:\nx is in file b.");
    assert_eq!(
        supo_core::context::extract_summary("blah <summary> facts </summary>"),
        Some("facts")
    );
    assert_eq!(supo_core::context::extract_summary("no tag"), None);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let mut b =
        TrajectoryBuilder::new(ContextConfig::new(50), vec![1; 5], vec![2; 3], vec![]).unwrap();
    assert!(
        b.push_summary(agent(3, 1)).is_err(),
        "summary before it was asked for"
    );
    assert!(b
        .push_step(
            Turn::other(Role::Tool, vec![1]),
            Turn::other(Role::Tool, vec![2])
        )
        .is_err());
    assert!(ContextConfig::new(10)
        .with_threshold(11)
        .validate()
        .is_err());
}

#[test]
fn text_context_counts_with_the_counter_and_rebuilds_the_prompt() {
    use supo_core::context::{TextContext, WordCounter};
    let cfg = ContextConfig::new(200).with_threshold(100);
    let mut c = TextContext::new(cfg.clone(), WordCounter, "find the key").unwrap();
    let obs = "word ".repeat(120);
    assert_eq!(c.on_step("ls", &obs).unwrap(), Decision::Summarize);
    assert_eq!(c.on_summary("key is in b.txt").unwrap(), Decision::Continue);
    assert_eq!(
        c.prompt(),
        cfg.rebuild_prompt("find the key", "key is in b.txt")
    );
    assert_eq!(c.manager().summaries(), 1);
    assert_eq!(
        c.on_answer("the key is 42").unwrap(),
        Decision::Stop(FinishReason::Answered)
    );
}
