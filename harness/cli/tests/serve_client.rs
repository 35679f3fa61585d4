//! The OpenAI-compatible client against a real `supo serve` on 127.0.0.1: completions with
//! log-probs and token ids, `/tokenize` agreeing with the server's own prompt count, the
//! continuation of an open assistant message, and the server's errors as client errors.

mod agent_common;

use agent_common::Server;
use supo_agent::http::{ChatMessage, ChatRequest, HttpConfig, HttpPolicy, PolicyError};

fn client(server: &Server) -> HttpPolicy {
    HttpPolicy::new(HttpConfig::new(&server.base_url, "supo-builtin")).unwrap()
}

fn request(messages: Vec<ChatMessage>, max_tokens: usize) -> ChatRequest {
    ChatRequest {
        messages,
        max_tokens,
        temperature: 1.0,
        seed: Some(7),
        ..Default::default()
    }
}

#[tokio::test]
async fn completions_carry_token_ids_and_logprobs_consistent_with_tokenize() {
    let server = Server::start(&[]);
    let p = client(&server);
    let messages = vec![
        ChatMessage::new("system", "find the value"),
        ChatMessage::new("user", "find k1"),
    ];
    let c = p.complete(&request(messages.clone(), 12)).await.unwrap();
    let ids = c.token_ids.clone().expect("token ids");
    let lps = c.logprobs.clone().expect("log-probs");
    assert_eq!(ids.len(), lps.len());
    assert!(!ids.is_empty() && ids.len() <= 12);
    assert!(lps.iter().all(|l| l.is_finite() && *l <= 0.0));
    // The text decodes the ids, and the server tokenizes it back to them.
    assert_eq!(p.tokenize_text(&c.text).await.unwrap(), ids);
    // /tokenize renders the same prompt the server generated from.
    let prompt = p.tokenize_chat(&messages, &[], true).await.unwrap();
    assert_eq!(c.usage.unwrap().prompt_tokens, prompt.len());
    assert_eq!(c.usage.unwrap().completion_tokens, ids.len());
    // The same seed gives the same tokens.
    let again = p.complete(&request(messages.clone(), 12)).await.unwrap();
    assert_eq!(again.token_ids, c.token_ids);

    // Continuing an open assistant message: the server's prompt is the first prompt (which
    // ends with the generation prompt) followed by the open message's words.
    let mut open = messages.clone();
    open.push(ChatMessage::new("assistant", c.text.clone()));
    let mut req = request(open, 4);
    req.continue_final_message = true;
    let cont = p.complete(&req).await.unwrap();
    assert_eq!(cont.usage.unwrap().prompt_tokens, prompt.len() + ids.len());
}

#[tokio::test]
async fn tools_are_part_of_the_prompt_the_server_counts() {
    let server = Server::start(&[]);
    let p = client(&server);
    let tools = vec![
        serde_json::json!({"type": "function", "function": {"name": "ls",
        "description": "list files", "parameters": {"type": "object", "properties": {}}}}),
    ];
    let messages = vec![ChatMessage::new("user", "find k2")];
    let mut req = request(messages.clone(), 3);
    req.tools = tools.clone();
    let c = p.complete(&req).await.unwrap();
    let with = p.tokenize_chat(&messages, &tools, true).await.unwrap();
    let without = p.tokenize_chat(&messages, &[], true).await.unwrap();
    assert_eq!(c.usage.unwrap().prompt_tokens, with.len());
    assert!(with.len() > without.len() && with.ends_with(&without));
}

#[tokio::test]
async fn server_errors_are_client_errors() {
    let server = Server::start(&[]);
    let p = client(&server);
    let long = "find ".repeat(500);
    let err = p
        .complete(&request(vec![ChatMessage::new("user", long.clone())], 4))
        .await
        .unwrap_err();
    assert!(err.is_context_length(), "{err}");
    let err = p
        .complete(&request(vec![ChatMessage::new("robot", "hi")], 4))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Status { status: 400, message } if message.contains("robot")),
        "{err}"
    );
    let mut req = request(vec![ChatMessage::new("user", "hi")], 4);
    req.continue_final_message = true;
    assert!(matches!(
        p.complete(&req).await,
        Err(PolicyError::Status { status: 400, .. })
    ));

    // With --truncate-prompt the same long prompt is answered, and counted whole.
    let server = Server::start(&["--truncate-prompt"]);
    let p = client(&server);
    let c = p
        .complete(&request(vec![ChatMessage::new("user", long)], 4))
        .await
        .unwrap();
    assert_eq!(c.usage.unwrap().prompt_tokens, 502);
}
