//! `TwitterAPI` (BFCL's `posting_api`): tweets, retweets, comments and follows. Tweets posted
//! without `mentions` share one default list, as the reference's mutable default argument
//! does within an instance, so `mention` on one of them shows on all of them.

use crate::env::{CallArgs, MethodName, ToolEnv, ToolError};
use crate::parse::dict_insert;
use crate::value::PyValue;

use super::pyops::{self, contains};

/// The public methods of `TwitterAPI`.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "authenticate_twitter",
    "comment",
    "follow_user",
    "get_tweet",
    "get_tweet_comments",
    "get_user_stats",
    "get_user_tweets",
    "list_all_following",
    "mention",
    "post_tweet",
    "posting_get_login_status",
    "retweet",
    "search_tweets",
    "unfollow_user",
];

/// BFCL's `TwitterAPI`.
#[derive(Debug, Clone)]
pub struct TwitterApi {
    username: PyValue,
    password: PyValue,
    authenticated: PyValue,
    /// Tweet id → tweet dict, in insertion order.
    tweets: Vec<(PyValue, PyValue)>,
    comments: PyValue,
    retweets: PyValue,
    following_list: PyValue,
    tweet_counter: PyValue,
    /// The shared default `mentions` list of `post_tweet`.
    default_mentions: Vec<PyValue>,
    /// Keys of the tweets whose `mentions` is the shared default list.
    sharing_default: Vec<PyValue>,
}

impl Default for TwitterApi {
    fn default() -> Self {
        let mut api = TwitterApi {
            username: PyValue::None,
            password: PyValue::None,
            authenticated: PyValue::None,
            tweets: Vec::new(),
            comments: PyValue::None,
            retweets: PyValue::None,
            following_list: PyValue::None,
            tweet_counter: PyValue::None,
            default_mentions: Vec::new(),
            sharing_default: Vec::new(),
        };
        // The default scenario always loads.
        let _ = api.load(&serde_json::Value::Object(serde_json::Map::new()));
        api
    }
}

fn err(msg: String) -> PyValue {
    PyValue::dict([("error", PyValue::Str(msg))])
}

fn one(key: &str, v: PyValue) -> PyValue {
    PyValue::dict([(key, v)])
}

/// Python's `int(text)` for a dict key of the scenario.
fn py_int(s: &str) -> Result<i64, ToolError> {
    let t = s.trim().replace('_', "");
    t.parse::<i64>().map_err(|_| {
        ToolError(format!(
            "invalid literal for int() with base 10: {}",
            crate::value::str_repr(s)
        ))
    })
}

/// The items `list.extend(v)` appends.
fn iter_items(v: &PyValue) -> Result<Vec<PyValue>, ToolError> {
    match v {
        PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => Ok(items.clone()),
        PyValue::Dict(items) => Ok(items.iter().map(|(k, _)| k.clone()).collect()),
        PyValue::Str(s) => Ok(s.chars().map(|c| PyValue::Str(c.to_string())).collect()),
        other => Err(ToolError(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

fn lower(v: &PyValue) -> Result<String, ToolError> {
    v.as_str().map(str::to_lowercase).ok_or_else(|| {
        ToolError(format!(
            "'{}' object has no attribute 'lower'",
            v.type_name()
        ))
    })
}

/// `d[key]` on a dict value, with Python's errors.
fn index<'a>(d: &'a PyValue, key: &str) -> Result<&'a PyValue, ToolError> {
    match d {
        PyValue::Dict(_) => d
            .get(key)
            .ok_or_else(|| ToolError(crate::value::str_repr(key))),
        other => Err(ToolError(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

impl TwitterApi {
    fn load(&mut self, scenario: &serde_json::Value) -> Result<(), ToolError> {
        let get = |k: &str| super::pyops::scenario_get(scenario, k);
        self.username = get("username").unwrap_or(PyValue::str("john"));
        self.password = get("password").unwrap_or(PyValue::str("john123"));
        self.authenticated = get("authenticated").unwrap_or(PyValue::Bool(false));
        self.tweets.clear();
        if let Some(PyValue::Dict(items)) = get("tweets") {
            for (k, v) in items {
                let key = match &k {
                    PyValue::Str(s) => PyValue::Int(py_int(s)?),
                    other => other.clone(),
                };
                dict_insert(&mut self.tweets, key, v).map_err(ToolError)?;
            }
        }
        self.comments = get("comments").unwrap_or(PyValue::Dict(Vec::new()));
        self.retweets = get("retweets").unwrap_or(PyValue::Dict(Vec::new()));
        self.following_list = get("following_list").unwrap_or(PyValue::List(vec![
            PyValue::str("alice"),
            PyValue::str("bob"),
        ]));
        self.tweet_counter = get("tweet_counter").unwrap_or(PyValue::Int(0));
        self.default_mentions.clear();
        self.sharing_default.clear();
        Ok(())
    }

    fn tweet(&self, id: &PyValue) -> Result<Option<&PyValue>, ToolError> {
        if matches!(id, PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_)) {
            return Err(ToolError(format!("unhashable type: '{}'", id.type_name())));
        }
        Ok(self
            .tweets
            .iter()
            .find(|(k, _)| pyops::eq(k, id))
            .map(|(_, v)| v))
    }

    fn not_found(id: &PyValue) -> PyValue {
        err(format!("Tweet with ID {} not found.", id.py_str()))
    }

    fn need_auth(&self, action: &str) -> Option<PyValue> {
        (!self.authenticated.truthy()).then(|| {
            err(format!(
                "User not authenticated. Please authenticate before {action}."
            ))
        })
    }

    fn post_tweet(
        &mut self,
        content: &PyValue,
        tags: &PyValue,
        mentions: Option<&PyValue>,
    ) -> Result<PyValue, ToolError> {
        if let Some(e) = self.need_auth("posting") {
            return Ok(e);
        }
        let mentions_value = match mentions {
            Some(m) => m.clone(),
            None => PyValue::List(self.default_mentions.clone()),
        };
        let tweet = PyValue::dict([
            ("id", self.tweet_counter.clone()),
            ("username", self.username.clone()),
            ("content", content.clone()),
            ("tags", tags.clone()),
            ("mentions", mentions_value),
        ]);
        let key = self.tweet_counter.clone();
        dict_insert(&mut self.tweets, key.clone(), tweet.clone()).map_err(ToolError)?;
        self.sharing_default.retain(|k| !pyops::eq(k, &key));
        if mentions.is_none() {
            self.sharing_default.push(key);
        }
        self.tweet_counter = match &self.tweet_counter {
            PyValue::Int(i) => PyValue::Int(i + 1),
            PyValue::Float(f) => PyValue::Float(f + 1.0),
            PyValue::Bool(b) => PyValue::Int(i64::from(*b) + 1),
            other => {
                return Err(ToolError(format!(
                    "unsupported operand type(s) for +=: '{}' and 'int'",
                    other.type_name()
                )))
            }
        };
        Ok(tweet)
    }

    fn retweet(&mut self, id: &PyValue) -> Result<PyValue, ToolError> {
        if let Some(e) = self.need_auth("retweeting") {
            return Ok(e);
        }
        if self.tweet(id)?.is_none() {
            return Ok(Self::not_found(id));
        }
        let user = self.username.clone();
        if !contains(&self.retweets, &user)? {
            if let PyValue::Dict(items) = &mut self.retweets {
                dict_insert(items, user.clone(), PyValue::List(Vec::new())).map_err(ToolError)?;
            }
        }
        let PyValue::Dict(items) = &mut self.retweets else {
            return Err(ToolError("'retweets' is not a dict".to_string()));
        };
        let Some((_, list)) = items.iter_mut().find(|(k, _)| pyops::eq(k, &user)) else {
            return Err(ToolError(crate::value::str_repr(&user.py_str())));
        };
        if contains(list, id)? {
            return Ok(one("retweet_status", PyValue::str("Already retweeted")));
        }
        match list {
            PyValue::List(l) => l.push(id.clone()),
            other => {
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'append'",
                    other.type_name()
                )))
            }
        }
        Ok(one(
            "retweet_status",
            PyValue::str("Successfully retweeted"),
        ))
    }

    fn comment(&mut self, id: &PyValue, text: &PyValue) -> Result<PyValue, ToolError> {
        if let Some(e) = self.need_auth("commenting") {
            return Ok(e);
        }
        if self.tweet(id)?.is_none() {
            return Ok(Self::not_found(id));
        }
        let entry = PyValue::dict([
            ("username", self.username.clone()),
            ("content", text.clone()),
        ]);
        let PyValue::Dict(items) = &mut self.comments else {
            return Err(ToolError("'comments' is not a dict".to_string()));
        };
        match items.iter_mut().find(|(k, _)| pyops::eq(k, id)) {
            Some((_, PyValue::List(l))) => l.push(entry),
            Some((_, other)) => {
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'append'",
                    other.type_name()
                )))
            }
            None => items.push((id.clone(), PyValue::List(vec![entry]))),
        }
        Ok(one(
            "comment_status",
            PyValue::str("Comment added successfully"),
        ))
    }

    fn mention(&mut self, id: &PyValue, names: &PyValue) -> Result<PyValue, ToolError> {
        if self.tweet(id)?.is_none() {
            return Ok(Self::not_found(id));
        }
        let shared = self.sharing_default.iter().any(|k| pyops::eq(k, id));
        let added = {
            let tweet = self.tweet(id)?.cloned().unwrap_or(PyValue::None);
            let list = index(&tweet, "mentions")?;
            if !matches!(list, PyValue::List(_)) {
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'extend'",
                    list.type_name()
                )));
            }
            iter_items(names)?
        };
        if shared {
            self.default_mentions.extend(added);
            let list = PyValue::List(self.default_mentions.clone());
            for (k, tweet) in &mut self.tweets {
                if self.sharing_default.iter().any(|s| pyops::eq(s, k)) {
                    set_key(tweet, "mentions", list.clone());
                }
            }
        } else if let Some((_, PyValue::Dict(items))) =
            self.tweets.iter_mut().find(|(k, _)| pyops::eq(k, id))
        {
            if let Some((_, PyValue::List(l))) = items
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some("mentions"))
            {
                l.extend(added);
            }
        }
        Ok(one(
            "mention_status",
            PyValue::str("Users mentioned successfully"),
        ))
    }

    fn follow(&mut self, name: &PyValue, follow: bool) -> Result<PyValue, ToolError> {
        let (action, key) = if follow {
            ("following", "follow_status")
        } else {
            ("unfollowing", "unfollow_status")
        };
        if let Some(e) = self.need_auth(action) {
            return Ok(e);
        }
        let present = contains(&self.following_list, name)?;
        let PyValue::List(list) = &mut self.following_list else {
            return Err(ToolError(format!(
                "'{}' object has no attribute 'append'",
                self.following_list.type_name()
            )));
        };
        if follow {
            if present {
                return Ok(one(key, PyValue::Bool(false)));
            }
            list.push(name.clone());
        } else {
            if !present {
                return Ok(one(key, PyValue::Bool(false)));
            }
            if let Some(pos) = list.iter().position(|v| pyops::eq(v, name)) {
                list.remove(pos);
            }
        }
        Ok(one(key, PyValue::Bool(true)))
    }

    fn by_user(&self, name: &PyValue) -> Result<Vec<PyValue>, ToolError> {
        let mut out = Vec::new();
        for (_, t) in &self.tweets {
            if pyops::eq(index(t, "username")?, name) {
                out.push(t.clone());
            }
        }
        Ok(out)
    }

    fn search(&self, keyword: &PyValue) -> Result<PyValue, ToolError> {
        let mut out = Vec::new();
        for (_, t) in &self.tweets {
            // `keyword.lower()` runs per tweet: no tweets, no error.
            let kw = lower(keyword)?;
            let hit = lower(index(t, "content")?)?.contains(&kw) || {
                let mut tags = Vec::new();
                for tag in iter_items(index(t, "tags")?)? {
                    tags.push(lower(&tag)?);
                }
                tags.contains(&kw)
            };
            if hit {
                out.push(t.clone());
            }
        }
        Ok(PyValue::List(out))
    }

    fn stats(&self, name: &PyValue) -> Result<PyValue, ToolError> {
        let tweet_count = self.by_user(name)?.len() as i64;
        let following = if pyops::eq(name, &self.username) {
            match &self.following_list {
                PyValue::List(l) | PyValue::Tuple(l) | PyValue::Set(l) => l.len() as i64,
                PyValue::Dict(d) => d.len() as i64,
                PyValue::Str(s) => s.chars().count() as i64,
                other => {
                    return Err(ToolError(format!(
                        "object of type '{}' has no len()",
                        other.type_name()
                    )))
                }
            }
        } else {
            0
        };
        if !matches!(self.retweets, PyValue::Dict(_)) {
            return Err(ToolError(format!(
                "'{}' object has no attribute 'get'",
                self.retweets.type_name()
            )));
        }
        contains(&self.retweets, name)?;
        let retweets = match self
            .retweets
            .as_dict()
            .and_then(|d| d.iter().find(|(k, _)| pyops::eq(k, name)))
        {
            Some((_, PyValue::List(l))) => l.len() as i64,
            Some((_, PyValue::Dict(d))) => d.len() as i64,
            Some((_, PyValue::Str(s))) => s.chars().count() as i64,
            Some((_, other)) => {
                return Err(ToolError(format!(
                    "object of type '{}' has no len()",
                    other.type_name()
                )))
            }
            None => 0,
        };
        Ok(PyValue::dict([
            ("tweet_count", PyValue::Int(tweet_count)),
            ("following_count", PyValue::Int(following)),
            ("retweet_count", PyValue::Int(retweets)),
        ]))
    }
}

/// Sets `d[key] = v` on a dict value with string key `key`.
fn set_key(d: &mut PyValue, key: &str, v: PyValue) {
    if let PyValue::Dict(items) = d {
        let _ = dict_insert(items, PyValue::str(key), v);
    }
}

impl ToolEnv for TwitterApi {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        _long_context: bool,
    ) -> Result<(), ToolError> {
        self.load(config)
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let q = MethodName::new("TwitterAPI", func);
        match func {
            "authenticate_twitter" => {
                let b = args.bind(&q, &[("username", None), ("password", None)])?;
                let ok = pyops::eq(b.get("username"), &self.username)
                    && pyops::eq(b.get("password"), &self.password);
                if ok {
                    self.authenticated = PyValue::Bool(true);
                }
                Ok(one("authentication_status", PyValue::Bool(ok)))
            }
            "posting_get_login_status" => {
                args.bind(&q, &[])?;
                Ok(one(
                    "login_status",
                    PyValue::Bool(self.authenticated.truthy()),
                ))
            }
            "post_tweet" => {
                let b = args.bind(
                    &q,
                    &[
                        ("content", None),
                        ("tags", Some(PyValue::List(Vec::new()))),
                        ("mentions", Some(PyValue::List(Vec::new()))),
                    ],
                )?;
                // An omitted `mentions` is the shared default list.
                let given =
                    args.positional.len() >= 3 || args.keyword.iter().any(|(k, _)| k == "mentions");
                let mentions = given.then(|| b.get("mentions"));
                self.post_tweet(b.get("content"), b.get("tags"), mentions)
            }
            "retweet" => {
                let b = args.bind(&q, &[("tweet_id", None)])?;
                self.retweet(b.get("tweet_id"))
            }
            "comment" => {
                let b = args.bind(&q, &[("tweet_id", None), ("comment_content", None)])?;
                self.comment(b.get("tweet_id"), b.get("comment_content"))
            }
            "mention" => {
                let b = args.bind(&q, &[("tweet_id", None), ("mentioned_usernames", None)])?;
                self.mention(b.get("tweet_id"), b.get("mentioned_usernames"))
            }
            "follow_user" => {
                let b = args.bind(&q, &[("username_to_follow", None)])?;
                self.follow(b.get("username_to_follow"), true)
            }
            "unfollow_user" => {
                let b = args.bind(&q, &[("username_to_unfollow", None)])?;
                self.follow(b.get("username_to_unfollow"), false)
            }
            "list_all_following" => {
                args.bind(&q, &[])?;
                if let Some(e) = self.need_auth("listing following") {
                    return Ok(e);
                }
                Ok(one("following_list", self.following_list.clone()))
            }
            "get_tweet" => {
                let b = args.bind(&q, &[("tweet_id", None)])?;
                let id = b.get("tweet_id");
                Ok(match self.tweet(id)? {
                    Some(t) => t.clone(),
                    None => Self::not_found(id),
                })
            }
            "get_user_tweets" => {
                let b = args.bind(&q, &[("username", None)])?;
                Ok(PyValue::List(self.by_user(b.get("username"))?))
            }
            "search_tweets" => {
                let b = args.bind(&q, &[("keyword", None)])?;
                self.search(b.get("keyword"))
            }
            "get_tweet_comments" => {
                let b = args.bind(&q, &[("tweet_id", None)])?;
                let id = b.get("tweet_id");
                if self.tweet(id)?.is_none() {
                    return Ok(Self::not_found(id));
                }
                contains(&self.comments, id)?;
                Ok(self
                    .comments
                    .as_dict()
                    .and_then(|d| d.iter().find(|(k, _)| pyops::eq(k, id)))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(PyValue::List(Vec::new())))
            }
            "get_user_stats" => {
                let b = args.bind(&q, &[("username", None)])?;
                self.stats(b.get("username"))
            }
            _ => Err(ToolError(format!("name '{func}' is not defined"))),
        }
    }

    fn state(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("username".into(), self.username.to_json());
        m.insert("password".into(), self.password.to_json());
        m.insert("authenticated".into(), self.authenticated.to_json());
        m.insert(
            "tweets".into(),
            PyValue::Dict(self.tweets.clone()).to_json(),
        );
        m.insert("comments".into(), self.comments.to_json());
        m.insert("retweets".into(), self.retweets.to_json());
        m.insert("following_list".into(), self.following_list.to_json());
        m.insert("tweet_counter".into(), self.tweet_counter.to_json());
        serde_json::Value::Object(m)
    }
}
