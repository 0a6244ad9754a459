#!/usr/bin/env bash
# Mutation testing, outside CI: mutmut 3 over the modules whose bugs the tests must catch (issue 11).
#
#   bench/mutation.sh                      # every module below (long: run one at a time on a busy machine)
#   bench/mutation.sh expressions capture  # some of them
#   bench/mutation.sh --again dedup        # after adding tests: the same copy, tests/ refreshed, survivors only
#
# mutmut is not a dependency of the package or of its tests: install it into the venv first
# (.venv/bin/pip install mutmut; written for mutmut 3.8). Each module runs in its own scratch copy of
# the working tree under $MUTATION_WORK (default /tmp/continuum-mutation/<module>), with steps/ laid
# out at the copy's root and mutants/steps -> . so that a step module's import name (prepare.dedup,
# as tests/conftest.py puts steps/ on sys.path) is also the name mutmut derives from its path. The
# copy gets a setup.cfg [mutmut] section naming the module's files and its fastest relevant tests;
# the score per module ends up in $MUTATION_WORK/<module>/score.txt (`mutmut results` lists survivors,
# `mutmut show <name>` shows one).
set -euo pipefail

REPO=${CONTINUUM_REPO:-$(cd "$(dirname "$0")/.." && pwd)}  # overridable: run a copy of this script
PYTHON_BIN=${PYTHON:-$REPO/.venv/bin/python}
MUTMUT=${MUTMUT:-$(dirname "$PYTHON_BIN")/mutmut}
WORK=${MUTATION_WORK:-/tmp/continuum-mutation}
JOBS=${MUTATION_JOBS:-2}

# module: files to mutate (relative to the flattened copy: steps/ at the root) | pytest selection
declare -A FILES=(
  [gate]="evaluate/gate.py common/bounds.py"
  [dedup]="prepare/dedup.py"
  [strategies]="train/strategies.py"
  [expressions]="pipelines/local/expressions.py"
  [capture]="pipelines/local/capture.py monitor/capture.py"
)
declare -A TESTS=(
  [gate]="tests/test_evaluate_compare.py tests/test_metrics.py"
  [dedup]="tests/test_data_quality.py tests/test_data_spill.py tests/test_data_inputs.py"
  [strategies]="tests/test_strategies.py::test_penalties_equal_their_dense_definitions
tests/test_strategies.py::test_penalty_without_what_the_starting_model_lacks_says_so
tests/test_strategies.py::test_each_penalty_uses_its_own_lambda
tests/test_strategies.py::test_penalties_cover_only_the_layers_with_matching_information
tests/test_strategies.py::test_normalised_fisher_leaves_out_what_carries_no_information
tests/test_strategies.py::test_small_lambdas_small_norms_and_the_adapters_device"
  [expressions]="tests/test_expressions.py"
  [capture]="tests/test_endpoints.py::test_capture_record_is_sagemakers_format
tests/test_endpoints.py::test_encoding_follows_capture_content_type_header
tests/test_endpoints.py::test_capture_content_types_are_normalised
tests/test_endpoints.py::test_input_only_capture_has_no_output_and_no_custom_attributes
tests/test_endpoints.py::test_writer_layout_and_reader_round_trip
tests/test_endpoints.py::test_reader_names_file_and_line_of_a_bad_record
tests/test_endpoints.py::test_concurrent_appends_keep_whole_lines
tests/test_endpoints.py::test_sampling_is_deterministic
tests/test_monitor.py::test_parser_reads_json_csv_base64_and_missing_outputs
tests/test_monitor.py::test_parser_names_file_and_line_of_bad_records
tests/test_monitor.py::test_chat_requests_count_their_last_user_message_as_the_prompt
tests/test_monitor.py::test_base64_bodies_decode_to_the_same_rows
tests/test_endpoints.py::test_capture_config_prefix_and_sampling_details
tests/test_endpoints.py::test_writer_files_per_endpoint_hour_and_writer
tests/test_endpoints.py::test_capture_times_are_utc_whatever_the_local_zone
tests/test_monitor.py::test_capture_reader_sections_records_and_files
tests/test_monitor.py::test_llm_rows_from_every_request_and_response_shape"
)

write_config() {  # setup.cfg's [mutmut] section for module $1 in the copy $2
  local also_copy
  also_copy=$(cd "$2" && ls -A | grep -vx -e mutants -e tests -e setup.cfg -e results.txt -e score.txt -e 'run.*\.log')
  {
    echo "[mutmut]"
    echo "source_paths="; for path in ${FILES[$1]}; do echo "    $path"; done
    echo "also_copy="; for path in $also_copy; do echo "    $path"; done
    echo "pytest_add_cli_args_test_selection="; for path in ${TESTS[$1]}; do echo "    $path"; done
    echo "pytest_add_cli_args="; echo "    -q"; echo "    -p"; echo "    no:cacheprovider"
  } > "$2/setup.cfg"
}

again=false
if [ "${1:-}" = "--again" ]; then again=true; shift; fi
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(expressions gate dedup strategies capture)
[ -x "$MUTMUT" ] || { echo "mutmut not found at $MUTMUT: $PYTHON_BIN -m pip install mutmut" >&2; exit 2; }

for module in "${modules[@]}"; do
  [ -n "${FILES[$module]:-}" ] || { echo "unknown module $module (one of ${!FILES[*]})" >&2; exit 2; }
  dir=$WORK/$module
  if $again; then
    [ -f "$dir/results.txt" ] || { echo "no earlier run in $dir" >&2; exit 2; }
    for target in "$dir/tests" "$dir/mutants/tests"; do rm -rf "$target" && cp -r "$REPO/tests" "$target"; done
    write_config "$module" "$dir" && rm -f "$dir/mutants/mutmut-stats.json"  # the test selection may have grown
    survivors=$(grep -E ': (survived|no tests)$' "$dir/results.txt" | cut -d: -f1 || true)
    echo "== $module: $(echo $survivors | wc -w) survivors again" >&2
    if [ -n "$survivors" ]; then
      # shellcheck disable=SC2086
      (cd "$dir" && "$MUTMUT" run --max-children "$JOBS" $survivors > run-again.log 2>&1) || { tail -30 "$dir/run-again.log" >&2; exit 1; }
    fi
  else
    rm -rf "$dir" && mkdir -p "$dir"
    # the working tree as git sees it (tracked and new files, nothing ignored), steps/ flattened to the root
    (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | (cd "$dir" && tar -xf -)
    (cd "$dir" && for entry in steps/* steps/.[!.]*; do [ -e "$entry" ] && mv "$entry" .; done; rmdir steps)
    write_config "$module" "$dir"
    mkdir -p "$dir/mutants" && ln -s . "$dir/mutants/steps"  # tests/conftest.py: REPO_ROOT/steps on sys.path
    echo "== $module: mutating ${FILES[$module]}" >&2
    (cd "$dir" && "$MUTMUT" run --max-children "$JOBS" > run.log 2>&1) || { tail -30 "$dir/run.log" >&2; exit 1; }
  fi
  (cd "$dir" && "$MUTMUT" results --all true > results.txt 2>&1 || true)
  "$PYTHON_BIN" - "$dir" "$module" <<'EOF'
import collections, pathlib, re, sys
folder, module = pathlib.Path(sys.argv[1]), sys.argv[2]
counts = collections.Counter()
for line in (folder / "results.txt").read_text().splitlines():
    match = re.match(r"\s*(\S+): (.+)$", line)
    if match:
        counts[match.group(2).strip()] += 1
total = sum(counts.values())
killed = counts.get("killed", 0) + counts.get("timeout", 0)
score = f"{module}: killed {killed} / {total} ({100 * killed / max(1, total):.0f}%) " + \
    ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
(folder / "score.txt").write_text(score + "\n")
print(score)
EOF
done
