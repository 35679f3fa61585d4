"""Shared helpers of the `supo` pytest suite (run by scripts/test.sh after `pip install ./python`).

Pieces that may be missing (verl, BFCL's data, a built `supo` binary) make their tests skip with
a reason that names them, or fail when the matching `SUPO_REQUIRE_*=1` is set, as the Rust
suites do (CI sets them all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "harness" / "cli" / "tests" / "data" / "supo-loss"


def need(what: str, env: str, ok: bool, why: str) -> None:
    """Skips the test (naming `what`) unless `ok`; fails instead when `env`=1."""
    if ok:
        return
    msg = f"{what}: skipped: {why}"
    if os.environ.get(env) == "1":
        pytest.fail(f"{msg}; {env}=1 forbids skipping")
    print(msg, file=sys.stderr)
    pytest.skip(msg)


def import_verl(what: str):
    """Imports verl's agent-loop and trainer modules, or skips (SUPO_REQUIRE_VERL)."""
    try:
        import verl.experimental.agent_loop.agent_loop  # noqa: F401
        import verl.trainer.ppo.core_algos  # noqa: F401
        import verl.trainer.ppo.v1.utils  # noqa: F401
    except ImportError as e:
        need(what, "SUPO_REQUIRE_VERL", False, f"verl cannot be imported ({e})")
    import verl

    return verl


def supo_binary(what: str) -> Path:
    """The workspace's `supo` (cargo build -p supo-cli), or skip (SUPO_REQUIRE_VERL)."""
    exe = Path(os.environ.get("SUPO_BIN", ROOT / "target" / "debug" / "supo"))
    need(what, "SUPO_REQUIRE_VERL", exe.is_file(), f"{exe} is not built (cargo build -p supo-cli)")
    return exe


class Server:
    """A real `supo serve` on a free local port, killed on close."""

    def __init__(self, exe: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        urls = [w for w in line.split() if w.startswith("http://")]
        if not urls:
            self.close()
            raise RuntimeError(f"supo serve printed no address: {line!r}")
        self.base_url = urls[0]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
