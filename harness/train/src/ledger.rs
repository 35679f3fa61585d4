//! The ledger: a long-horizon tool task whose facts do not fit in the working context.
//!
//! A ledger has `N` pages of `F` facts each; a fact is two tokens `k⟨i⟩ v⟨j⟩` (key `i` has
//! value `j`), and every key appears at most once. The task asks for the values of `M` keys
//! (`find k3 k17 p6 <eom>`: two keys; the ledger starts at page 6). The agent reads pages with
//! the tool call `read p⟨n⟩ <eom>`; the observation is the page's facts and the id of the next
//! page, or `end` on the last (`k8 v1 k3 v5 k30 v2 p19 <eom>`). Page ids are a random
//! permutation, so the only way through the ledger is to follow it — each call's argument comes
//! from the previous call's output. The agent ends with `answer k3 v5 k17 v0 <eom>`. The reward is the share of queried facts answered right, in
//! order, so it is verifiable; an episode succeeds when all are right.
//!
//! The queried facts are spread over the ledger: the `i`-th of `M` sits on a random page of the
//! `i`-th `M`-th of the pages, except the last, which sits on the last page. So the answer needs
//! facts from both ends of the ledger and an agent must read it all; with `N` large the whole
//! ledger cannot fit in a working context `W`, and an agent that summarizes must learn *which*
//! facts to carry in its summaries (`p19 k3 v5 k9 v1 k17 v0 <eom>`: the page to read next, and
//! the facts it keeps). Difficulty is the page count.
//!
//! Tokens are words; [`LedgerVocab`] lists them. Everything here is deterministic given a seed.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The shape of a family of ledger tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// Distinct keys (`k0 …`).
    pub keys: usize,
    /// Distinct values (`v0 …`).
    pub values: usize,
    /// Facts per page.
    pub facts_per_page: usize,
    /// Keys asked for per task.
    pub queried: usize,
    /// The most pages a task may have (page tokens `p1 …`).
    pub max_pages: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            keys: 64,
            values: 8,
            facts_per_page: 3,
            queried: 2,
            max_pages: 24,
        }
    }
}

impl LedgerConfig {
    /// Checks that every task of up to `max_pages` pages has distinct keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys == 0 || self.values == 0 || self.facts_per_page == 0 || self.queried == 0 {
            return Err(format!("ledger sizes must be positive: {self:?}"));
        }
        if self.queried > self.facts_per_page {
            return Err("a ledger cannot ask for more keys than one page holds".into());
        }
        Ok(())
    }

    /// Whether tasks of `pages` pages fit: enough keys and page tokens.
    pub fn check_pages(&self, pages: usize) -> Result<(), String> {
        if pages == 0 || pages > self.max_pages {
            return Err(format!(
                "a ledger has 1 to {} pages, not {pages}",
                self.max_pages
            ));
        }
        if pages * self.facts_per_page > self.keys {
            return Err(format!(
                "{pages} pages of {} facts need more than {} keys",
                self.facts_per_page, self.keys
            ));
        }
        Ok(())
    }
}

/// The ledger's words and their token ids.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerVocab {
    config: LedgerConfig,
    words: Vec<String>,
}

/// Ids of the fixed words (they come first, in this order).
pub mod token {
    /// An unknown word.
    pub const UNK: u32 = 0;
    /// End of a message.
    pub const EOM: u32 = 1;
    /// The summarization instruction `v_sum`.
    pub const SUMMARIZE: u32 = 2;
    /// Starts the summary in a rebuilt prompt.
    pub const SUMMARY: u32 = 3;
    /// The task verb.
    pub const FIND: u32 = 4;
    /// The tool call.
    pub const READ: u32 = 5;
    /// The final answer.
    pub const ANSWER: u32 = 6;
    /// The observation of a call that failed.
    pub const ERROR: u32 = 7;
    /// Chat role markers (for serving over a chat API).
    pub const ROLES: [u32; 4] = [8, 9, 10, 11];
    /// "No next page": the end of the ledger.
    pub const END: u32 = 12;
    /// The number of fixed words.
    pub const FIXED: u32 = 13;
}

const FIXED_WORDS: [&str; token::FIXED as usize] = [
    "<unk>",
    "<eom>",
    "<summarize>",
    "<summary>",
    "find",
    "read",
    "answer",
    "error",
    "<system>",
    "<user>",
    "<assistant>",
    "<tool>",
    "end",
];

impl LedgerVocab {
    /// The vocabulary of `config`: fixed words, pages, keys, then values.
    pub fn new(config: LedgerConfig) -> LedgerVocab {
        let mut words: Vec<String> = FIXED_WORDS.iter().map(|w| w.to_string()).collect();
        words.extend((1..=config.max_pages).map(|p| format!("p{p}")));
        words.extend((0..config.keys).map(|k| format!("k{k}")));
        words.extend((0..config.values).map(|v| format!("v{v}")));
        LedgerVocab { config, words }
    }

    /// The words, indexed by token id.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The configuration the vocabulary was built for.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The token of page `p` (1-based).
    pub fn page(&self, p: usize) -> u32 {
        debug_assert!((1..=self.config.max_pages).contains(&p));
        token::FIXED + p as u32 - 1
    }

    /// The page number of a token, if it is a page.
    pub fn page_of(&self, t: u32) -> Option<usize> {
        let first = token::FIXED;
        (first..first + self.config.max_pages as u32)
            .contains(&t)
            .then(|| (t - first) as usize + 1)
    }

    /// The token of key `k`.
    pub fn key(&self, k: usize) -> u32 {
        token::FIXED + (self.config.max_pages + k) as u32
    }

    /// The token of value `v`.
    pub fn value(&self, v: usize) -> u32 {
        token::FIXED + (self.config.max_pages + self.config.keys + v) as u32
    }

    /// The value of a value token.
    pub fn value_of(&self, t: u32) -> Option<usize> {
        let first = self.value(0);
        (first..first + self.config.values as u32)
            .contains(&t)
            .then(|| (t - first) as usize)
    }

    /// The tokens of fact "key `k` has value `v`".
    pub fn fact(&self, k: usize, v: usize) -> [u32; 2] {
        [self.key(k), self.value(v)]
    }

    /// The facts stated in `tokens`: each key token followed by a value token.
    pub fn facts_in(&self, tokens: &[u32]) -> Vec<(usize, usize)> {
        tokens
            .windows(2)
            .filter_map(|w| Some((self.key_of(w[0])?, self.value_of(w[1])?)))
            .collect()
    }

    /// The key of a key token.
    pub fn key_of(&self, t: u32) -> Option<usize> {
        let first = self.key(0);
        (first..first + self.config.keys as u32)
            .contains(&t)
            .then(|| (t - first) as usize)
    }
}

/// One ledger task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTask {
    /// A name, unique within a split (used as the GRPO group).
    pub id: String,
    /// `pages[p][i] = (key, value)`, in reading order.
    pub pages: Vec<Vec<(usize, usize)>>,
    /// The id of each page (`ids[p]` of `pages[p]`, 1-based): a random permutation.
    pub ids: Vec<usize>,
    /// The keys asked for, in answer order.
    pub query: Vec<usize>,
}

impl LedgerTask {
    /// A random task of `pages` pages.
    pub fn random(
        config: &LedgerConfig,
        pages: usize,
        id: String,
        rng: &mut impl Rng,
    ) -> Result<LedgerTask, String> {
        config.validate()?;
        config.check_pages(pages)?;
        let mut keys: Vec<usize> = (0..config.keys).collect();
        keys.shuffle(rng);
        let facts: Vec<(usize, usize)> = keys[..pages * config.facts_per_page]
            .iter()
            .map(|&k| (k, rng.random_range(0..config.values)))
            .collect();
        let pages_v: Vec<Vec<(usize, usize)>> = facts
            .chunks(config.facts_per_page)
            .map(|c| c.to_vec())
            .collect();
        let mut query: Vec<usize> = Vec::with_capacity(config.queried);
        for i in 0..config.queried {
            let page = if i + 1 == config.queried {
                pages - 1
            } else {
                let lo = i * pages / config.queried;
                rng.random_range(lo..((i + 1) * pages / config.queried).max(lo + 1))
            };
            let free: Vec<usize> = pages_v[page]
                .iter()
                .map(|f| f.0)
                .filter(|k| !query.contains(k))
                .collect();
            query.push(
                *free
                    .choose(rng)
                    .expect("a page holds more facts than are queried"),
            );
        }
        let mut ids: Vec<usize> = (1..=config.max_pages).collect();
        ids.shuffle(rng);
        ids.truncate(pages);
        Ok(LedgerTask {
            id,
            pages: pages_v,
            ids,
            query,
        })
    }

    /// The value of key `k`, if the ledger has it.
    pub fn value_of(&self, k: usize) -> Option<usize> {
        self.pages.iter().flatten().find(|f| f.0 == k).map(|f| f.1)
    }

    /// The prompt: `find k… p⟨first page⟩ <eom>`.
    pub fn prompt(&self, vocab: &LedgerVocab) -> Vec<u32> {
        let mut p = vec![token::FIND];
        p.extend(self.query.iter().map(|&k| vocab.key(k)));
        p.push(vocab.page(self.ids[0]));
        p.push(token::EOM);
        p
    }

    /// The tokens of the correct answer action.
    pub fn answer(&self, vocab: &LedgerVocab) -> Vec<u32> {
        let mut a = vec![token::ANSWER];
        for &k in &self.query {
            a.extend(vocab.fact(k, self.value_of(k).unwrap_or(0)));
        }
        a.push(token::EOM);
        a
    }

    /// The queried facts `(key, value)`.
    pub fn queried_facts(&self) -> Vec<(usize, usize)> {
        self.query
            .iter()
            .filter_map(|&k| self.value_of(k).map(|v| (k, v)))
            .collect()
    }

    /// What the environment answers to an action (the action's tokens without `<eom>`).
    pub fn step(&self, vocab: &LedgerVocab, action: &[u32]) -> Step {
        match action {
            [token::ANSWER, facts @ ..] => Step::Answer(self.reward(vocab, facts)),
            [token::READ, page] => {
                let at = vocab
                    .page_of(*page)
                    .and_then(|id| self.ids.iter().position(|&i| i == id));
                match at {
                    Some(p) => {
                        let mut obs: Vec<u32> = self.pages[p]
                            .iter()
                            .flat_map(|&(k, v)| vocab.fact(k, v))
                            .collect();
                        obs.push(match self.ids.get(p + 1) {
                            Some(&next) => vocab.page(next),
                            None => token::END,
                        });
                        obs.push(token::EOM);
                        Step::Observation(obs)
                    }
                    None => Step::Observation(vec![token::ERROR, token::EOM]),
                }
            }
            _ => Step::Observation(vec![token::ERROR, token::EOM]),
        }
    }

    /// The reward of answer `facts` (`k v k v …`): the share of queried keys answered right,
    /// in order.
    pub fn reward(&self, vocab: &LedgerVocab, facts: &[u32]) -> f64 {
        let right = self
            .query
            .iter()
            .enumerate()
            .filter(|&(i, &k)| {
                let want = self.value_of(k).map(|v| vocab.fact(k, v));
                want.is_some() && facts.get(2 * i..2 * i + 2) == want.as_ref().map(|w| &w[..])
            })
            .count();
        right as f64 / self.query.len() as f64
    }
}

/// The environment's reply to an action.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A tool observation (ends with `<eom>`).
    Observation(Vec<u32>),
    /// The episode's final answer, with its reward.
    Answer(f64),
}

/// A split of tasks: `count` tasks with page counts drawn uniformly from `pages`.
pub fn split(
    config: &LedgerConfig,
    name: &str,
    pages: std::ops::RangeInclusive<usize>,
    count: usize,
    seed: u64,
) -> Result<Vec<LedgerTask>, String> {
    config.check_pages(*pages.start())?;
    config.check_pages(*pages.end())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let n = rng.random_range(pages.clone());
            LedgerTask::random(config, n, format!("{name}-{i}"), &mut rng)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let v = LedgerVocab::new(LedgerConfig::default());
        assert_eq!(v.words()[v.page(3) as usize], "p3");
        assert_eq!(v.words()[v.key(17) as usize], "k17");
        assert_eq!(v.words()[v.value(5) as usize], "v5");
        assert_eq!(
            v.facts_in(&[v.key(3), v.value(1), v.value(2), v.key(4)]),
            [(3, 1)]
        );
        assert_eq!(v.key_of(v.key(0)), Some(0));
        assert_eq!(v.value_of(v.value(7)), Some(7));
        assert_eq!(v.page_of(v.page(24)), Some(24));
        assert_eq!(v.page_of(v.key(0)), None);
        assert_eq!(v.words().len(), v.value(7) as usize + 1);
    }

    #[test]
    fn tasks_answer_and_reward() {
        let c = LedgerConfig::default();
        let v = LedgerVocab::new(c.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = LedgerTask::random(&c, 6, "t".into(), &mut rng).unwrap();
        let keys: Vec<usize> = t.pages.iter().flatten().map(|f| f.0).collect();
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 18, "keys are distinct");
        let ans = t.answer(&v);
        assert_eq!(t.step(&v, &ans[..ans.len() - 1]), Step::Answer(1.0));
        let mut swapped = ans[1..ans.len() - 1].to_vec();
        swapped.rotate_left(2);
        assert_eq!(t.reward(&v, &swapped), 0.0);
        assert_eq!(t.reward(&v, &ans[1..3]), 0.5);
        match t.step(&v, &[token::READ, v.page(t.ids[1])]) {
            Step::Observation(o) => assert_eq!(o[6..], [v.page(t.ids[2]), token::EOM]),
            s => panic!("{s:?}"),
        }
        assert!(matches!(
            t.step(&v, &[token::READ, v.page(*t.ids.last().unwrap())]),
            Step::Observation(o) if o[6] == token::END
        ));
        let unused = (1..=24).find(|i| !t.ids.contains(i)).unwrap();
        assert_eq!(
            t.step(&v, &[token::READ, v.page(unused)]),
            Step::Observation(vec![token::ERROR, token::EOM])
        );
        assert!(split(&c, "x", 2..=25, 3, 0).is_err());
        // The last queried fact is on the last page, the first in the first half.
        for t in split(&c, "y", 1..=12, 200, 3).unwrap() {
            let page_of = |k: usize| t.pages.iter().position(|p| p.iter().any(|f| f.0 == k));
            assert_eq!(page_of(t.query[1]), Some(t.pages.len() - 1));
            assert!(page_of(t.query[0]).unwrap() < t.pages.len().div_ceil(2).max(1));
            assert_ne!(t.query[0], t.query[1]);
        }
        assert_eq!(split(&c, "x", 2..=5, 3, 9), split(&c, "x", 2..=5, 3, 9));
    }
}
