#!/usr/bin/env bash
# Review a pull request's model changes with gitsnap: called by github-workflow.yml.
#
# Copy it next to the workflow (.github/scripts/gitsnap-pr-report.sh). In a
# pull_request job, with the repository checked out, it
#   1. finds the base and head commits in the event ($GITHUB_EVENT_PATH) and
#      fetches what the checkout lacks: the base commit, the metrics notes
#      (refs/notes/gitsnap, written by `git snap metrics add` + `git snap push`);
#   2. writes `git snap diff BASE HEAD` as Markdown (the comment) and as one
#      self-contained HTML page (the artifact) into $GITSNAP_REPORT_DIR;
#   3. posts the Markdown as ONE pull-request comment, or updates the one it
#      posted before (found by the hidden marker the report starts with), through
#      the REST API at $GITHUB_API_URL with $GITHUB_TOKEN;
#   4. exits with the diff's code: 1 when a --fail-on gate failed (the check
#      fails), 2 or 3 when gitsnap could not diff (the comment says why).
#
# Environment: what GitHub sets (GITHUB_EVENT_PATH, GITHUB_SHA, GITHUB_BASE_REF,
# GITHUB_API_URL, GITHUB_REPOSITORY) and GITHUB_TOKEN, plus
#   GITSNAP_FAIL_ON      gate conditions, one per line (e.g. "accuracy regresses by 0.01")
#   GITSNAP_DIFF_ARGS    more `git snap diff` options, e.g. "--values --top 20"
#   GITSNAP_REPORT_DIR   where the reports go (default: gitsnap-report)
#   GITSNAP_COMMENT      set to 0 to write the reports without commenting
set -euo pipefail

: "${GITHUB_EVENT_PATH:?run in a GitHub Actions pull_request job}"
: "${GITHUB_REPOSITORY:?}"
api="${GITHUB_API_URL:-https://api.github.com}"
out="${GITSNAP_REPORT_DIR:-gitsnap-report}"
python="${PYTHON:-python3}"
marker="<!-- gitsnap-diff -->" # the first line of every report gitsnap writes

event() { "$python" -c 'import json, os, sys
e = json.load(open(os.environ["GITHUB_EVENT_PATH"], encoding="utf-8"))
for k in sys.argv[1].split("."):
    e = (e or {}).get(k)
print("" if e is None else e)' "$1"; }

pr=$(event pull_request.number)
base=$(event pull_request.base.sha)
head="${GITHUB_SHA:-$(event pull_request.head.sha)}"
if [ -z "$pr" ] || [ -z "$base" ]; then
    echo "::error::no pull request in $GITHUB_EVENT_PATH: run this on pull_request events" >&2
    exit 2
fi

# A shallow checkout lacks the base commit; the notes are never fetched by default.
if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    git fetch --no-tags --quiet origin "$base" || git fetch --no-tags --quiet origin "${GITHUB_BASE_REF:?}"
fi
git fetch --no-tags --quiet origin '+refs/notes/gitsnap:refs/notes/gitsnap' 2>/dev/null ||
    echo "gitsnap: no metrics notes on origin yet" >&2

args=()
while IFS= read -r condition; do
    if [ -n "${condition//[[:space:]]/}" ]; then args+=(--fail-on "$condition"); fi
done <<<"${GITSNAP_FAIL_ON:-}"
# shellcheck disable=SC2206 # word splitting of the extra options is wanted
extra=(${GITSNAP_DIFF_ARGS:-})

mkdir -p "$out"
status=0
git snap diff "$base" "$head" --format markdown ${extra[@]+"${extra[@]}"} ${args[@]+"${args[@]}"} \
    >"$out/model-review.md" 2>"$out/stderr.txt" || status=$?
cat "$out/stderr.txt" >&2
if [ "$status" -le 1 ]; then
    # The page shows the same gate; its exit code is the same one.
    git snap diff "$base" "$head" --format html ${extra[@]+"${extra[@]}"} ${args[@]+"${args[@]}"} \
        >"$out/model-review.html" 2>/dev/null || true
else
    {
        echo "$marker"
        echo "### Model changes"
        echo
        echo "❌ \`git snap diff\` could not compare \`${base:0:10}\` with \`${head:0:10}\` (exit $status):"
        echo
        echo '~~~~'
        cat "$out/stderr.txt"
        echo '~~~~'
    } >"$out/model-review.md"
fi

if [ "${GITSNAP_COMMENT:-1}" != "0" ]; then
    : "${GITHUB_TOKEN:?set GITHUB_TOKEN (secrets.GITHUB_TOKEN) to comment, or GITSNAP_COMMENT=0}"
    API="$api" PR="$pr" MARKER="$marker" BODY_FILE="$out/model-review.md" "$python" - <<'PY'
import json, os, urllib.request

api, repo, pr = os.environ["API"].rstrip("/"), os.environ["GITHUB_REPOSITORY"], os.environ["PR"]
marker = os.environ["MARKER"]
body = open(os.environ["BODY_FILE"], encoding="utf-8").read()
headers = {
    "Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "gitsnap-pr-report",
}


def call(method, url, data=None):
    req = urllib.request.Request(
        url, method=method, headers=headers,
        data=None if data is None else json.dumps(data).encode("utf-8"),
    )
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


# Our earlier comment, if any: the first one that starts with the marker.
mine, page = None, 1
while mine is None:
    found = call("GET", f"{api}/repos/{repo}/issues/{pr}/comments?per_page=100&page={page}")
    mine = next((c for c in found if (c.get("body") or "").startswith(marker)), None)
    if len(found) < 100:
        break
    page += 1
if mine is not None:
    call("PATCH", f"{api}/repos/{repo}/issues/comments/{mine['id']}", {"body": body})
    print(f"gitsnap: updated comment {mine['id']} on pull request #{pr}")
else:
    made = call("POST", f"{api}/repos/{repo}/issues/{pr}/comments", {"body": body})
    print(f"gitsnap: commented on pull request #{pr} ({made.get('html_url', made.get('id'))})")
PY
fi

if [ "$status" = 1 ]; then
    echo "::error::a metric gate failed (see the pull-request comment and $out/model-review.html)"
fi
exit "$status"
