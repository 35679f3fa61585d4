"""The official `openai` SDK, with strict response validation, against `supo serve`.

Run by harness/cli/tests/openai_sdk.rs:  python3 openai_sdk_cases.py BASE_URL
Prints one line per case (`ok NAME` or `FAIL NAME: why`) and exits 1 if any case failed.
Every request has a timeout and no retries; nothing loops without a bound.
"""

import json
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI

BASE = sys.argv[1].rstrip("/")
MODEL = "supo-builtin"
client = OpenAI(base_url=BASE, api_key="none", max_retries=0, timeout=60,
                _strict_response_validation=True)
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def msgs(text="find k1 k2"):
    return [{"role": "system", "content": "find the value"}, {"role": "user", "content": text}]


def chat(**kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("messages", msgs())
    kw.setdefault("max_tokens", 6)
    kw.setdefault("seed", 7)
    return client.chat.completions.create(**kw)


def expect_error(cls, status, param, fn):
    try:
        fn()
    except cls as e:
        assert e.status_code == status, f"status {e.status_code}, wanted {status}"
        err = e.body if isinstance(e.body, dict) else {}
        err = err.get("error", err)
        for k in ("message", "type", "param", "code"):
            assert k in err, f"the error has no {k!r}: {e.body}"
        assert err["param"] == param, f"param {err['param']!r}, wanted {param!r}"
        assert err["message"], "an empty message"
        return err
    raise AssertionError(f"no {cls.__name__}")


def raw(method, path, body=None, headers=None):
    req = urllib.request.Request(BASE.rsplit("/v1", 1)[0] + path, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def json_error(status, headers, body, want):
    assert status == want, f"status {status}, wanted {want}"
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert err["code"] == want, err
    return err


@case
def models_have_created_and_owned_by():
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids, ids
    m = models.data[0]
    assert isinstance(m.created, int) and m.created > 0 and m.owned_by
    assert client.models.retrieve(MODEL).id == MODEL
    expect_error(openai.NotFoundError, 404, "model", lambda: client.models.retrieve("gpt-x"))


@case
def a_chat_completion_validates():
    r = chat(logprobs=True)
    c = r.choices[0]
    assert r.object == "chat.completion" and c.message.role == "assistant"
    assert c.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens == len(c.logprobs.content) > 0


@case
def max_tokens_zero_is_a_400():
    expect_error(openai.BadRequestError, 400, "max_tokens", lambda: chat(max_tokens=0))
    expect_error(openai.BadRequestError, 400, "max_tokens", lambda: chat(max_tokens=-3))
    expect_error(openai.BadRequestError, 400, "max_completion_tokens",
                 lambda: chat(max_tokens=None, max_completion_tokens=0))


@case
def max_completion_tokens_bounds_the_completion():
    r = chat(max_tokens=None, max_completion_tokens=3, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3, r.usage


@case
def empty_messages_is_a_400():
    expect_error(openai.BadRequestError, 400, "messages", lambda: chat(messages=[]))


@case
def top_logprobs_gives_the_alternatives():
    r = chat(logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content
    for t in content:
        assert len(t.top_logprobs) == 3, t
        lps = [a.logprob for a in t.top_logprobs]
        assert lps == sorted(lps, reverse=True) and t.logprob <= lps[0] + 1e-6
    r = chat(logprobs=True, top_logprobs=20)
    assert all(len(t.top_logprobs) == 20 for t in r.choices[0].logprobs.content)
    expect_error(openai.BadRequestError, 400, "top_logprobs",
                 lambda: chat(logprobs=True, top_logprobs=21))


@case
def stop_strings_cut_the_text_and_finish_stop():
    free = chat(max_tokens=8, temperature=1.0, extra_body={"ignore_eos": True})
    words = free.choices[0].message.content.split()
    assert len(words) >= 3, words
    stop = words[2]
    r = chat(max_tokens=8, temperature=1.0, stop=[stop], extra_body={"ignore_eos": True})
    c = r.choices[0]
    assert stop not in c.message.content, (stop, c.message.content)
    assert c.finish_reason == "stop", c.finish_reason
    assert free.choices[0].message.content.startswith(c.message.content)
    r = chat(max_tokens=8, temperature=1.0, stop=stop, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "stop"


TOOLS = [{"type": "function", "function": {"name": "ls", "description": "list files",
          "parameters": {"type": "object", "properties": {}}}}]


@case
def tool_choice_none_auto_required_and_named():
    for choice in ("none", "auto"):
        r = chat(tools=TOOLS, tool_choice=choice)
        assert r.choices[0].finish_reason in ("stop", "length")
    for choice in ("required", {"type": "function", "function": {"name": "ls"}}):
        try:
            r = chat(tools=TOOLS, tool_choice=choice)
        except openai.BadRequestError as e:
            err = e.body.get("error", e.body)
            assert err["param"] == "tool_choice" and "cannot be satisfied" in err["message"], err
        else:
            calls = r.choices[0].message.tool_calls
            assert calls and calls[0].function.name == "ls", r
    expect_error(openai.BadRequestError, 400, "tool_choice",
                 lambda: chat(tools=TOOLS, tool_choice={"type": "function",
                                                         "function": {"name": "rm"}}))
    expect_error(openai.BadRequestError, 400, "tool_choice",
                 lambda: chat(tool_choice="required"))


@case
def content_as_text_parts():
    parts = [{"role": "system", "content": [{"type": "text", "text": "find the value"}]},
             {"role": "user", "content": [{"type": "text", "text": "find k1 k2"}]}]
    a = chat(messages=parts)
    b = chat()
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    assert a.choices[0].message.content == b.choices[0].message.content
    expect_error(openai.BadRequestError, 400, "messages[0]", lambda: chat(messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]))


@case
def the_developer_role_is_the_system_role():
    a = chat(messages=[{"role": "developer", "content": "find the value"},
                       {"role": "user", "content": "find k1 k2"}])
    b = chat()
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    assert a.choices[0].message.content == b.choices[0].message.content
    expect_error(openai.BadRequestError, 400, "messages[0].role",
                 lambda: chat(messages=[{"role": "robot", "content": "x"}]))


@case
def an_unknown_model_is_a_404():
    err = expect_error(openai.NotFoundError, 404, "model", lambda: chat(model="x"))
    assert err["message"] == "The model `x` does not exist.", err


@case
def served_model_names_are_accepted():
    r = chat(model="alias-b")
    assert r.model == "alias-b"
    assert [m.id for m in client.models.list().data] == [MODEL, "alias-b"]


@case
def a_huge_body_is_a_json_413():
    body = json.dumps({"model": MODEL, "messages": [{"role": "user",
                       "content": "x" * (10 * 1000 * 1000)}]}).encode()
    status, headers, out = raw("POST", "/v1/chat/completions", body,
                               {"content-type": "application/json"})
    json_error(status, headers, out, 413)
    expect_error(openai.APIStatusError, 413, None,
                 lambda: chat(messages=[{"role": "user", "content": "x" * (10 * 1000 * 1000)}]))


@case
def not_found_and_method_not_allowed_have_json_bodies():
    json_error(*raw("GET", "/v1/chat/completions"), 405)
    json_error(*raw("POST", "/v1/nothing", b"{}", {"content-type": "application/json"}), 404)
    json_error(*raw("POST", "/v1/chat/completions", b"{not json",
                    {"content-type": "application/json"}), 400)


@case
def any_64_bit_seed():
    for seed in (-1, -(2 ** 63), 2 ** 63, 2 ** 64 - 1):
        a = chat(seed=seed, temperature=1.0)
        b = chat(seed=seed, temperature=1.0)
        assert a.choices[0].message.content == b.choices[0].message.content
    expect_error(openai.BadRequestError, 400, "seed", lambda: chat(seed=2 ** 64))


@case
def n_choices():
    r = chat(n=3, temperature=1.0, max_tokens=8, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = {c.message.content for c in r.choices}
    assert len(texts) > 1, texts
    assert r.usage.completion_tokens == 24


@case
def streaming_with_usage():
    whole = chat(temperature=1.0, logprobs=True)
    chunks = list(chat(temperature=1.0, logprobs=True, stream=True,
                       stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content, (text, whole)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason], finish
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    n = sum(len(c.choices[0].logprobs.content) for c in chunks
            if c.choices and c.choices[0].logprobs)
    assert n == whole.usage.completion_tokens
    plain = list(chat(stream=True))
    assert all(c.usage is None for c in plain)
    expect_error(openai.BadRequestError, 400, "stream_options",
                 lambda: chat(stream_options={"include_usage": True}))


@case
def legacy_completions_text_and_token_ids():
    r = client.completions.create(model=MODEL, prompt="find k1 k2", max_tokens=4, seed=3,
                                  logprobs=2, extra_body={"ignore_eos": True})
    c = r.choices[0]
    assert r.object == "text_completion" and c.finish_reason == "length"
    assert len(c.logprobs.tokens) == 4 and all(len(t) == 2 for t in c.logprobs.top_logprobs)
    status, _, out = raw("POST", "/tokenize", json.dumps({"model": MODEL,
                         "prompt": "find k1 k2"}).encode(), {"content-type": "application/json"})
    assert status == 200, out
    ids = json.loads(out)["tokens"]
    s = client.completions.create(model=MODEL, prompt=ids, max_tokens=4, seed=3, logprobs=2,
                                  extra_body={"ignore_eos": True,
                                              "return_tokens_as_token_ids": True})
    assert s.choices[0].logprobs.token_logprobs == c.logprobs.token_logprobs
    assert all(t.startswith("token_id:") for t in s.choices[0].logprobs.tokens)
    e = client.completions.create(model=MODEL, prompt=ids, max_tokens=2, seed=3, logprobs=0,
                                  echo=True)
    assert e.choices[0].text.startswith("find k1 k2"), e.choices[0].text
    assert len(e.choices[0].logprobs.tokens) == len(ids) + e.usage.completion_tokens
    expect_error(openai.BadRequestError, 400, "prompt",
                 lambda: client.completions.create(model=MODEL, prompt=[], max_tokens=2))
    expect_error(openai.BadRequestError, 400, "prompt[0]",
                 lambda: client.completions.create(model=MODEL, prompt=[10 ** 9], max_tokens=2))
    expect_error(openai.BadRequestError, 400, "max_tokens",
                 lambda: client.completions.create(model=MODEL, prompt="find", max_tokens=0))


@case
def legacy_completions_stream():
    chunks = list(client.completions.create(model=MODEL, prompt="find k1", max_tokens=3, seed=1,
                                            stream=True))
    assert chunks and all(c.object == "text_completion" for c in chunks)


def main():
    failed = 0
    for fn in CASES:
        try:
            fn()
            print(f"ok {fn.__name__}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{len(CASES) - failed} of {len(CASES)} cases passed (openai {openai.__version__})",
          flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
