#!/bin/sh
# Start LiteLLM proxy 1.106.2 (its own venv, bench/.venv-litellm) in front of an OpenAI-compatible upstream.
# Usage: bench/start_litellm.sh PORT UPSTREAM_API_URL
# Needs LITELLM_MASTER_KEY in the environment (a strong key; 1.106.2 refuses weak ones).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-litellm"
port=${1:?port}
upstream=${2:?upstream API root, e.g. http://127.0.0.1:9000/v1}
if [ ! -x "$venv/bin/litellm" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "litellm[proxy]==1.106.2" matplotlib
fi
: "${LITELLM_MASTER_KEY:?set LITELLM_MASTER_KEY}"
# No remote downloads (cost map, blog posts, beta headers), no DB, errors only in the log.
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOCAL_BLOG_POSTS=True LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True
export LITELLM_LOG=ERROR BENCH_UPSTREAM_URL="$upstream" BENCH_UPSTREAM_KEY=sk-fake-upstream
exec "$venv/bin/litellm" --config "$here/litellm_config.yaml" --host 127.0.0.1 --port "$port"
