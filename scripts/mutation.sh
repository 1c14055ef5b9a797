#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules where a silent bug hurts most: the policy parser, the host/port grammar,
# the YAML loader, redaction and scrubbing, the file watch and the xDS per-stream state. Not run in CI: one module
# takes minutes. See docs/mutation-testing.md for how to read the results.
#
#   scripts/mutation.sh                 every module, one after the other
#   scripts/mutation.sh redact scrub    only these (names: see MODULES below)
#   scripts/mutation.sh 'parse:_parse_proxy*,_read_credentials'
#                                       only the mutants of these functions (globs of module-level function names)
#
# Each module runs in its own scratch copy of the tree (.mutation/MODULE, git-ignored) with mutmut mutating only
# that module and running only that module's fast unit tests (never the integration tests), one test process at a
# time under `nice -n 19`. At the end one line per module: mutants, killed, survived, no tests, timeout.
# Afterwards: `cd .mutation/MODULE && ../../.venv/bin/mutmut results` lists the survivors,
# `../../.venv/bin/mutmut show NAME` shows one as a diff.
#
# Needs `.venv` with the test and mutation extras: ./scripts/install-test-deps.sh && .venv/bin/pip install -e '.[mutation]'
# MUTATION_JOBS=N runs N mutants at once (default 1: the machine is shared).
# MUTATION_MUTANTS='GLOB ...' runs only the mutants whose mutmut names match (e.g. '*watch_policy_file__mutmut_1?').
# MUTATION_BASELINE=1 leaves out the tests written to kill mutants (tests/*/test_mutants_*.py): the "before" count.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${VENV:-.venv}"
MUTMUT="$ROOT/$VENV/bin/mutmut"
JOBS="${MUTATION_JOBS:-1}"
BASELINE="${MUTATION_BASELINE:-0}"

# module name -> "source file|test files (globs; missing ones are skipped)"
declare -A MODULES=(
    [redact]="egress_xds/redact.py|tests/unit/test_redaction.py tests/unit/test_mutants_redact.py"
    [scrub]="egress_xds/scrub.py|tests/unit/test_redaction.py tests/unit/test_mutants_scrub.py"
    [state]="egress_xds/xds/state.py|tests/xds/test_sotw.py tests/xds/test_delta.py tests/xds/test_nack_retry.py tests/xds/test_mutants_state.py"
    [subscription]="egress_xds/xds/subscription.py|tests/xds/test_sotw.py tests/xds/test_delta.py tests/xds/test_mutants_subscription.py"
    [file_watch]="egress_xds/sources/file_watch.py|tests/unit/test_file_watch.py tests/unit/test_mutants_file_watch.py"
    [yaml_tree]="egress_xds/policy/yaml_tree.py|tests/unit/test_policy_parse.py tests/unit/test_policy_input_bounds.py tests/unit/test_policy_keys.py tests/unit/test_mutants_yaml_tree.py"
    [destinations]="egress_xds/policy/destinations.py|tests/unit/test_destinations.py tests/unit/test_policy_parse.py tests/unit/test_no_proxy.py tests/unit/test_mutants_destinations.py"
    [parse]="egress_xds/policy/parse.py|tests/unit/test_policy_parse.py tests/unit/test_policy_keys.py tests/unit/test_policy_input_bounds.py tests/unit/test_node_selector.py tests/unit/test_destinations.py tests/unit/test_mutants_parse.py"
)
ORDER=(redact scrub state subscription file_watch yaml_tree destinations parse)

if [ ! -x "$MUTMUT" ]; then
    echo "mutmut is not installed in $VENV: run $VENV/bin/pip install -e '.[mutation]'" >&2
    exit 1
fi
selected=("$@")
if [ "${#selected[@]}" -eq 0 ]; then selected=("${ORDER[@]}"); fi
for argument in "${selected[@]}"; do
    module="${argument%%:*}"
    if [ -z "${MODULES[$module]+x}" ]; then
        echo "unknown module '$module' (known: ${ORDER[*]})" >&2
        exit 1
    fi
done

toml_list() {  # toml_list a b c -> ["a", "b", "c"]
    local out="" item
    for item in "$@"; do out+="${out:+, }\"$item\""; done
    printf '[%s]' "$out"
}

summaries=()
for argument in "${selected[@]}"; do
    module="${argument%%:*}"
    spec="${MODULES[$module]}"
    source="${spec%%|*}"
    tests=()
    for test in ${spec#*|}; do
        if [ "$BASELINE" = 1 ] && [[ "$(basename "$test")" == test_mutants_* ]]; then continue; fi
        if [ -f "$test" ]; then tests+=("$test"); fi
    done
    work="$ROOT/.mutation/$module"
    if [ "$BASELINE" = 1 ]; then work+="-baseline"; fi
    echo "== $module: mutating $source, tests: ${tests[*]}"
    # A fresh copy each run: results describe the tree as it is now.
    rm -rf "$work"
    mkdir -p "$work"
    cp -r egress_xds tests deploy examples pyproject.toml "$work/"  # some unit tests read the CRDs and examples
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    if [ "$BASELINE" = 1 ]; then find "$work/tests" -name 'test_mutants_*.py' -delete; fi
    cat >>"$work/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["egress_xds"]
also_copy = ["deploy", "examples"]
only_mutate = ["$source"]
pytest_add_cli_args_test_selection = $(toml_list "${tests[@]}")
# A timing test (a 512 KiB file within a second) cannot hold with every function behind a trampoline.
pytest_add_cli_args = ["-p", "no:cacheprovider", "--deselect", "tests/unit/test_policy_input_bounds.py::test_the_largest_file_allowed_is_read_within_a_second"]
use_git_change_detection = false
# Each mutant's test process is forked from a server that never ran a test: the xDS tests start gRPC servers,
# whose threads do not survive a fork from the process that collected the coverage statistics.
process_isolation = "forkserver"
EOF
    # `module:f1,f2`: mutmut names a function's mutants `package.module.x_FUNCTION__mutmut_N`.
    names=()
    if [[ "$argument" == *:* ]]; then
        dotted="${source%.py}"
        dotted="${dotted//\//.}"
        IFS=, read -r -a functions <<<"${argument#*:}"
        for function in "${functions[@]}"; do names+=("$dotted.x_${function}__mutmut_*"); done
        echo "   only the functions: ${functions[*]}"
    fi
    if [ -n "${MUTATION_MUTANTS:-}" ]; then read -r -a extra <<<"$MUTATION_MUTANTS" && names+=("${extra[@]}"); fi
    start=$(date +%s)
    (cd "$work" && nice -n 19 "$MUTMUT" run --max-children "$JOBS" "${names[@]}" >"$work/run.log" 2>&1) || {
        echo "mutmut failed for $module; see $work/run.log" >&2
        tail -20 "$work/run.log" >&2
        exit 1
    }
    seconds=$(($(date +%s) - start))
    (cd "$work" && "$MUTMUT" results --all true >"$work/results.txt" 2>&1) || true
    count() { grep -c ": $1\$" "$work/results.txt" || true; }
    summary="$(printf '%-13s mutants %4d  killed %4d  survived %4d  no tests %3d  timeout %3d  (%ds)' "$module" \
        "$(($(grep -c ': ' "$work/results.txt" || true) - $(count 'not checked')))" "$(count killed)" "$(count survived)" "$(count 'no tests')" \
        "$(count timeout)" "$seconds")"
    echo "$summary"
    grep -E ": (survived|no tests)\$" "$work/results.txt" | sed 's/^ */    /' || true
    summaries+=("$summary")
done

echo
echo "== survivors per module"
printf '%s\n' "${summaries[@]}"
