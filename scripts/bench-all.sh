#!/usr/bin/env bash
# Every benchmark, SQLite and PostgreSQL, one Markdown table: runs each bench script with
# BENCH_TABLE set (each appends one row per figure: benchmark, database, figure, baseline
# measured in the same run, ratio), then prints the table. A script that fails is reported
# and the others still run; scripts other helpers add (bench-handout.sh, bench-refresher.sh,
# bench-outage.sh) run when present.
# Usage: scripts/bench-all.sh            full counts (1 M clients, 10 M audit rows…: hours)
#        QUICK=1 scripts/bench-all.sh    small counts (100 k clients, 10 k refreshing
#                                        connections, a 3-minute outage: about 45 min)
#        ONLY="list audit" scripts/bench-all.sh   just those (names without bench- and .sh)
#        BENCH_TABLE=out.md …            also keep the table in that file
set -uo pipefail
cd "$(dirname "$0")/.."
table=${BENCH_TABLE:-$(mktemp)}
: >"$table"
export BENCH_TABLE=$table QUICK=${QUICK:-}
# bench-refresher.sh takes its counts from the environment: 10,000 connections over 2
# minutes instead of 100,000 over 10.
if [[ -n $QUICK ]]; then export N=${N:-10000} BURST=${BURST:-1000} SPREAD=${SPREAD:-120}; fi
cargo build --release -q --bin connecthub || exit 1

# name|arguments in full|arguments with QUICK=1 (the scripts' own usage lines say what
# they mean).
plan=(
  "bench|10 64|5 64"
  "bench-list|1000000 20|100000 5"
  "bench-usage|1000000 30|100000 10"
  "bench-audit|10000000 20|200000 5"
  "bench-webhooks|2000 100 20|500 50 5"
  "bench-syncs|100000|10000"
  "bench-memory|1000000|100000"
  "bench-handout||"
  "bench-refresher||"
  "bench-outage|10 100000|3 1000"
)
failed=()
for entry in "${plan[@]}"; do
  IFS='|' read -r name full quick <<<"$entry"
  script=scripts/$name.sh
  [[ -x $script ]] || { [[ -f $script ]] || continue; }
  if [[ -n ${ONLY:-} && " $ONLY " != *" ${name#bench-} "* && " $ONLY " != *" $name "* ]]; then continue; fi
  args=$full; [[ -n $QUICK ]] && args=$quick
  echo "== $name $args"
  started=$SECONDS
  # shellcheck disable=SC2086  # the arguments are words on purpose
  if bash "$script" $args; then
    echo "== $name: $((SECONDS - started)) s"
  else
    failed+=("$name")
    echo "== $name FAILED after $((SECONDS - started)) s"
  fi
done

echo
echo "| benchmark | database | figure | baseline | ratio |"
echo "|---|---|---|---|---|"
cat "$table"
((${#failed[@]})) && { echo; echo "failed: ${failed[*]}"; exit 1; }
exit 0
