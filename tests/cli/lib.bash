# Shared by the CLI tests (tests/cli/*.sh), which source it after setting $hydra. (Not *.sh: CMake
# makes a test of every tests/cli/*.sh.)
#
#   expect CODE PATTERN -- command...   the command exits with CODE and PATTERN (a grep regex; set
#                                       EXPECT_FIXED=1 for a fixed string) is in its stdout+stderr
#                                       (in its stderr alone with EXPECT_STDERR=1).
#   check DESCRIPTION [--] command...   the command succeeds (a test, cmp, ...).
# Counts into $pass and $fail; a failure prints the command, its exit code and its first lines.
pass=0
fail=0

expect() {
  local code=$1 pattern=$2
  shift 3  # CODE PATTERN --
  local out rc flags=-q
  [[ "${EXPECT_FIXED:-0}" == 1 ]] && flags=-qF
  if [[ "${EXPECT_STDERR:-0}" == 1 ]]; then
    out=$("$@" 2>&1 >/dev/null)
  else
    out=$("$@" 2>&1)
  fi
  rc=$?
  if [[ $rc -ne $code ]] || ! grep $flags -- "$pattern" <<<"$out"; then
    echo "FAIL: '$*' exited $rc (want $code), output lacks '$pattern':"
    echo "$out" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

check() {
  local what=$1
  shift
  [[ "${1:-}" == "--" ]] && shift  # the -- is optional
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}

# metrics.csv without its three timing columns (tokens_per_s, elapsed_s, communication_s): what must not
# depend on timing.
losses() { cut -d, -f1-$(($(head -1 "$1" | tr ',' '\n' | wc -l) - 3)) "$1"; }

# small_config FILE: a Hydra config.json small enough for CLI tests (vocab 320 covers the tiny
# tokenizer's 260 ids; 3 heads of 1 block on a 1-block trunk, d_model 32).
small_config() {
  cat >"$1" <<'EOF'
{"format_version": 1, "n_heads": 3, "trunk_layers": 1, "head_layers": 1,
 "base_config": {"vocab_size": 320, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8,
                 "hidden_size": 48, "rope_theta": 10000.0, "norm_eps": 1e-6, "qk_norm": true, "init_std": 0.02}}
EOF
}
