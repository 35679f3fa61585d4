"""An ``LLMServerClient`` for a separately deployed vLLM-compatible server: token-id prompts
to ``/v1/completions`` over HTTP (vLLM, SGLang, ``supo serve``), token ids and log-probs back
as verl's ``TokenOutput``."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.rollout.replica import TokenOutput

import supo

#: verl's sampling-parameter names that ``/v1/completions`` takes as they are.
_PASSED = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", "stop", "stop_token_ids",
           "ignore_eos")


class CompletionsClient(LLMServerClient):
    """Sends each generation to ``{base_url}/completions`` with ``prompt`` = the token ids,
    ``logprobs: 0``, ``return_token_ids: true``; routes requests itself (no Ray load balancer).

    ``max_tokens`` comes from the request's ``sampling_params["max_tokens"]``, else from
    ``max_tokens`` given here, else from ``actor_rollout_ref.rollout.response_length``.
    HTTP and server errors raise :class:`supo.SupoError` with the server's message.
    """

    def __init__(
        self,
        config: Any,
        base_url: str,
        model: str | None = None,
        max_tokens: int | None = None,
        timeout_s: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, load_balancer_handle=None, **kwargs)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    def _default_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return int(self.max_tokens)
        try:
            return int(self.config.actor_rollout_ref.rollout.response_length)
        except AttributeError:
            raise supo.SupoError("no max_tokens: pass it, or set actor_rollout_ref.rollout.response_length") from None

    def request_body(self, prompt_ids: list[int], sampling_params: dict[str, Any]) -> dict[str, Any]:
        """The ``/v1/completions`` request for one generation."""
        body: dict[str, Any] = {
            "prompt": [int(t) for t in prompt_ids],
            "max_tokens": int(sampling_params.get("max_tokens") or self._default_max_tokens()),
            "logprobs": 0,
            "return_token_ids": True,
        }
        if self.model is not None:
            body["model"] = self.model
        for k in _PASSED:
            if sampling_params.get(k) is not None:
                body[k] = sampling_params[k]
        if body.get("top_k") == -1:
            del body["top_k"]  # verl's "no top-k"
        return body

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if image_data or video_data or audio_data:
            raise supo.SupoError("CompletionsClient sends text token ids only (no images, video or audio)")
        body = self.request_body(prompt_ids, sampling_params)
        url = f"{self.base_url}/completions"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as s:
                async with s.post(url, json=body) as r:
                    text = await r.text()
                    status = r.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise supo.SupoError(f"POST {url} failed: {e}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise supo.SupoError(f"POST {url}: HTTP {status}, not JSON: {text[:200]!r}") from None
        if status != 200:
            msg = data.get("error", {}).get("message", text[:200]) if isinstance(data, dict) else text[:200]
            raise supo.SupoError(f"POST {url}: HTTP {status}: {msg}")
        try:
            choice = data["choices"][0]
            ids = [int(t) for t in choice["token_ids"]]
            lps = [float(x) for x in choice["logprobs"]["token_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise supo.SupoError(f"POST {url}: the answer has no token ids and log-probs ({e})") from None
        if len(lps) != len(ids):
            raise supo.SupoError(f"POST {url}: {len(ids)} token ids but {len(lps)} log-probs")
        return TokenOutput(
            token_ids=ids,
            log_probs=lps,
            stop_reason="completed",
            extra_fields={"finish_reason": choice.get("finish_reason")},
        )
