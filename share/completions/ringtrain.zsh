#compdef ringtrain

__ringtrain_complete() {
    local -ar non_empty_completions=("${@:#(|:*)}")
    local -ar empty_completions=("${(M)@:#(|:*)}")
    _describe -V '' non_empty_completions -- empty_completions -P $'\'\''
}

__ringtrain_custom_complete() {
    local -a completions
    completions=("${(@f)"$("${command_name}" "${@}" "${command_line[@]}")"}")
    if [[ "${#completions[@]}" -gt 1 ]]; then
        __ringtrain_complete "${completions[@]:0:-1}"
    fi
}

__ringtrain_cursor_index_in_current_word() {
    if [[ -z "${QIPREFIX}${IPREFIX}${PREFIX}" ]]; then
        printf 0
    else
        printf %s "${#${(z)LBUFFER}[-1]}"
    fi
}

_ringtrain() {
    emulate -RL zsh -G
    setopt extendedglob nullglob numericglobsort
    unsetopt aliases banghist

    local -xr SAP_SHELL=zsh
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(builtin emulate zsh -c 'printf %s "${ZSH_VERSION}"')"
    local -r SAP_SHELL_VERSION

    local context state state_descr line
    local -A opt_args

    local -r command_name="${words[1]}"
    local -ar command_line=("${words[@]}")
    local -ir current_word_index="$((CURRENT - 1))"

    local -i ret=1
    local -ar arg_specs=(
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'train:Train in one process (the single-node fallback: world size 1, no sockets).'
            'launch:Train with a coordinator and N worker processes on this host (like torchrun --nproc-per-node).'
            'coordinator:Run the coordinator of a job whose workers run on other hosts (ringtrain worker).'
            'worker:Run one worker; it learns its rank, peers and job from the coordinator.'
            'keygen:Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).'
            'config:Print the fully resolved job (file, flags and --set applied, defaults filled in) as YAML.'
            'eval:Evaluate a checkpoint on a split of its data, other data, or another context length.'
            'predict:Predict with a checkpoint: IDX, .npy or CSV inputs → CSV or .npy of predictions; text prompts → generated text.'
            'generate:Generate text from a language-model checkpoint (key/value cache, temperature, top-k).'
            'inspect:Show what a checkpoint holds: progress, model, data, tensors.'
            'plot:Plot runs: SVG curves (loss, metrics, lr, throughput; several runs overlaid) and a self-contained HTML report.'
            'export-model:Export a model'\''s weights (PyTorch state_dict names, no optimizer state) with its spec and one forward pass, for PyTorch.'
            'summary:Print each layer'\''s output shape, parameters and forward FLOPs (per sample), with totals.'
            'bench:Benchmarks that print figures comparable with the reference scripts.'
            'version:Print versions of RingTrain and the libraries it links.'
            'help:Show subcommand help information.'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        train|launch|coordinator|worker|keygen|config|eval|predict|generate|inspect|plot|export-model|summary|bench|version|help)
            "_ringtrain_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_ringtrain_train() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--data[The data\: a named dataset'\''s directory of IDX files (data.path), or the training file (data.train).]:data:'
        '--epochs[Number of epochs (overrides train.epochs).]:epochs:'
        '--batch-size[Per-worker batch size (overrides train.batch_size).]:batch-size:'
        '--lr[Base learning rate (overrides optimizer.lr).]:lr:'
        '--seed[Random seed (overrides seed).]:seed:'
        '--checkpoint-dir[Checkpoint directory (overrides checkpoint.dir\: relative paths are inside the run directory; empty string disables checkpoints).]:checkpoint-dir:'
        '--run-dir[Run directory for the job, log, metrics, TensorBoard events and checkpoints (default\: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.]:run-dir:'
        '*--set[Override any job field\: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).]:path=value:'
        '(--quiet -q)'{--quiet,-q}'[Print only warnings and errors (and the final result); the run'\''s log.txt still gets every line.]'
        '(--verbose -v)'{--verbose,-v}'[Also print details\: every rank'\''s set-up (ring edges, transport), not only rank 0'\''s.]'
        '--resume[Resume from a checkpoint, a run directory (its newest checkpoint) or '\''last'\'' (the newest run)\: parameters, optimizer, progress, RNG.]:ckpt|run-dir|last:'
        '--init-from[Start a fresh run from the weights in this safetensors file (or a run directory'\''s newest checkpoint, or last).]:init-from:'
        '--init-partial[With --init-from\: take only the tensors whose names and shapes match (fine-tuning with a new head); report the rest.]'
        '--threads[OpenBLAS threads (default\: OPENBLAS_NUM_THREADS or all cores).]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_launch() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--data[The data\: a named dataset'\''s directory of IDX files (data.path), or the training file (data.train).]:data:'
        '--epochs[Number of epochs (overrides train.epochs).]:epochs:'
        '--batch-size[Per-worker batch size (overrides train.batch_size).]:batch-size:'
        '--lr[Base learning rate (overrides optimizer.lr).]:lr:'
        '--seed[Random seed (overrides seed).]:seed:'
        '--checkpoint-dir[Checkpoint directory (overrides checkpoint.dir\: relative paths are inside the run directory; empty string disables checkpoints).]:checkpoint-dir:'
        '--run-dir[Run directory for the job, log, metrics, TensorBoard events and checkpoints (default\: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.]:run-dir:'
        '*--set[Override any job field\: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).]:path=value:'
        '(--quiet -q)'{--quiet,-q}'[Print only warnings and errors (and the final result); the run'\''s log.txt still gets every line.]'
        '(--verbose -v)'{--verbose,-v}'[Also print details\: every rank'\''s set-up (ring edges, transport), not only rank 0'\''s.]'
        '--workers[Worker processes.]:workers:'
        '--max-restarts[Restart the whole job from the newest checkpoint up to this many times after a failure.]:max-restarts:'
        '--min-workers[Elastic\: go on without a dead worker while at least this many remain (1 to --workers).]:min-workers:'
        '--resume[Resume from a checkpoint, a run directory or '\''last'\'' (any world size).]:ckpt|run-dir|last:'
        '--init-from[Start a fresh run from the weights in this safetensors file.]:init-from:'
        '--init-partial[With --init-from\: take only the tensors whose names and shapes match; report the rest.]'
        '--threads[BLAS threads per worker (default\: the cores shared out).]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_coordinator() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--data[The data\: a named dataset'\''s directory of IDX files (data.path), or the training file (data.train).]:data:'
        '--epochs[Number of epochs (overrides train.epochs).]:epochs:'
        '--batch-size[Per-worker batch size (overrides train.batch_size).]:batch-size:'
        '--lr[Base learning rate (overrides optimizer.lr).]:lr:'
        '--seed[Random seed (overrides seed).]:seed:'
        '--checkpoint-dir[Checkpoint directory (overrides checkpoint.dir\: relative paths are inside the run directory; empty string disables checkpoints).]:checkpoint-dir:'
        '--run-dir[Run directory for the job, log, metrics, TensorBoard events and checkpoints (default\: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.]:run-dir:'
        '*--set[Override any job field\: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).]:path=value:'
        '(--quiet -q)'{--quiet,-q}'[Print only warnings and errors (and the final result); the run'\''s log.txt still gets every line.]'
        '(--verbose -v)'{--verbose,-v}'[Also print details\: every rank'\''s set-up (ring edges, transport), not only rank 0'\''s.]'
        '--listen[Endpoint to listen on, e.g. tcp\://0.0.0.0\:29500.]:listen:'
        '--workers[Number of workers to wait for.]:workers:'
        '--min-workers[Elastic\: go on without lost workers while at least this many remain, and admit workers that arrive later (ringtrain worker --coordinator …) up to --workers.]:min-workers:'
        '--resume[Resume every worker from a checkpoint, a run directory or '\''last'\'' (read by rank 0).]:ckpt|run-dir|last:'
        '--init-from[Every worker starts a fresh run from the weights in this file (a path each worker can read).]:init-from:'
        '--init-partial[With --init-from\: take only the tensors whose names and shapes match; report the rest.]'
        '--rendezvous-timeout[Seconds to wait for every worker to arrive.]:rendezvous-timeout:'
        '--curve-key[CURVE key pair of this process (a .key file from ringtrain keygen); turns encryption on.]:curve-key:'
        '*--authorized-keys[Coordinator\: public keys allowed to join (.pub files or directories of them; repeatable).]:authorized-keys:'
        '--coordinator-key[Worker\: the coordinator'\''s public key (.pub file).]:coordinator-key:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_worker() {
    local -i ret=1
    local -ar arg_specs=(
        '--coordinator[Coordinator endpoint, e.g. tcp\://10.0.0.1\:29500.]:coordinator:'
        '--bind[Address for this worker'\''s ring input (default\: the address that reaches the coordinator).]:bind:'
        '--rank[Rank to ask for.]:rank:'
        '(--quiet -q)'{--quiet,-q}'[Print only warnings and errors (and the final result); the run'\''s log.txt still gets every line.]'
        '(--verbose -v)'{--verbose,-v}'[Also print details\: every rank'\''s set-up (ring edges, transport), not only rank 0'\''s.]'
        '--rendezvous-timeout[Seconds to wait for the coordinator'\''s answer (its WELCOME) before giving up.]:rendezvous-timeout:'
        ':job:'
        '--curve-key[CURVE key pair of this process (a .key file from ringtrain keygen); turns encryption on.]:curve-key:'
        '*--authorized-keys[Coordinator\: public keys allowed to join (.pub files or directories of them; repeatable).]:authorized-keys:'
        '--coordinator-key[Worker\: the coordinator'\''s public key (.pub file).]:coordinator-key:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_keygen() {
    local -i ret=1
    local -ar arg_specs=(
        ':name:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_config() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--data[The data\: a named dataset'\''s directory of IDX files (data.path), or the training file (data.train).]:data:'
        '--epochs[Number of epochs (overrides train.epochs).]:epochs:'
        '--batch-size[Per-worker batch size (overrides train.batch_size).]:batch-size:'
        '--lr[Base learning rate (overrides optimizer.lr).]:lr:'
        '--seed[Random seed (overrides seed).]:seed:'
        '--checkpoint-dir[Checkpoint directory (overrides checkpoint.dir\: relative paths are inside the run directory; empty string disables checkpoints).]:checkpoint-dir:'
        '--run-dir[Run directory for the job, log, metrics, TensorBoard events and checkpoints (default\: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.]:run-dir:'
        '*--set[Override any job field\: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).]:path=value:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_eval() {
    local -i ret=1
    local -ar arg_specs=(
        ':checkpoint:'
        '--split[Split to evaluate\: test, validation or train.]:split:'
        '--data[Data instead of the job'\''s\: a training file or directory (data.train), split as the job splits it.]:data:'
        '--context[Sequence models\: tokens per sample (model.input and data.text.context); learned positions cannot go past their table.]:context:'
        '*--set[Override a field of the checkpoint'\''s job (repeatable).]:path=value:'
        '--threads[Threads (default\: OPENBLAS_NUM_THREADS or all cores).]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_predict() {
    local -i ret=1
    local -ar arg_specs=(
        ':checkpoint:'
        ':input:'
        '--out[Output file\: .csv or .npy (default\: CSV on standard output).]:out:'
        '--format[Input format when the name does not tell\: idx, npy, csv, text.]:format:'
        '--batch-size[Samples per forward pass.]:batch-size:'
        '--tokens[Language models\: tokens to generate per prompt.]:tokens:'
        '--temperature[Language models\: sampling temperature (0\: the most likely token).]:temperature:'
        '--threads[Threads (default\: OPENBLAS_NUM_THREADS or all cores).]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_generate() {
    local -i ret=1
    local -ar arg_specs=(
        ':checkpoint:'
        '--prompt[Text to continue (every character must be in the model'\''s vocabulary).]:prompt:'
        '--tokens[Tokens to generate.]:tokens:'
        '--temperature[Softmax temperature; 0 picks the most likely token every time.]:temperature:'
        '--top-k[Draw from the k most likely tokens only (0\: all).]:top-k:'
        '--seed[Random seed of the draws.]:seed:'
        '--threads[Threads (default\: OPENBLAS_NUM_THREADS or all cores).]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_inspect() {
    local -i ret=1
    local -ar arg_specs=(
        ':checkpoint:'
        '--json[Print one JSON object instead of text.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_plot() {
    local -i ret=1
    local -ar arg_specs=(
        '*:runs:'
        '--out[Directory for loss.svg, lr.svg, throughput.svg, metric-*.svg and report.html.]:out:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_export-model() {
    local -i ret=1
    local -ar arg_specs=(
        ':model:'
        '--out[Output safetensors file (a directory with `all`).]:out:'
        '--seed[Seed.]:seed:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_summary() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--model[A zoo model instead of a job file (mlp, cnn, cnn_bn, resnet_small, …).]:model:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_bench() {
    local -i ret=1
    local -ar arg_specs=(
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'train:Single-process training throughput.'
            'layers:Time each layer'\''s forward and backward.'
            'allreduce:Ring all-reduce bandwidth between local worker processes (nccl-tests columns).'
            'conv:Conv2D and Linear GFLOP/s against raw sgemm on the same shapes.'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        train|layers|allreduce|conv)
            "_ringtrain_bench_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_ringtrain_bench_train() {
    local -i ret=1
    local -ar arg_specs=(
        '--model[Model from the zoo (mlp, cnn, cnn_bn, resnet_small, …).]:model:'
        '--batch[Batch size.]:batch:'
        '--epochs[Epochs to time (the first is included).]:epochs:'
        '--threads[OpenBLAS threads.]:threads:'
        '--data[Dataset directory.]:data:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_bench_layers() {
    local -i ret=1
    local -ar arg_specs=(
        ':job:'
        '--batch[Batch size.]:batch:'
        '--reps[Timed repetitions.]:reps:'
        '--threads[OpenBLAS threads.]:threads:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_bench_allreduce() {
    local -i ret=1
    local -ar arg_specs=(
        '--workers[Worker processes.]:workers:'
        '*--size[Buffer size, e.g. 4KiB, 64MiB (repeatable).]:size:'
        '--iters[Timed iterations per size (default\: enough for ~0.5 s, at least 5).]:iters:'
        '--chunk[Frame size.]:chunk:'
        '*--bind[Address the workers bind their ring inputs to (repeat once per rank to give each its own).]:bind:'
        '--rendezvous-host[Address the rendezvous listens on (must be reachable from every worker).]:rendezvous-host:'
        '--wrap[Command prefix for each worker, {rank} and {host} (rank / --ranks-per-host) replaced (e.g. "ip netns exec rt-h{rank}").]:wrap:'
        '--transport[auto\: shared memory between processes on one host, TCP otherwise; tcp\: TCP only.]:transport:'
        '--buffers[shared\: buffers from the communicator (as the trainer'\''s gradients), all-reduced in place when every worker is on one host; private\: each worker'\''s own memory, through the ring.]:buffers:'
        '--compression[none, or bf16\: buckets travel the ring as bfloat16 (results checked to bf16 precision).]:compression:'
        '--ranks-per-host[Act as if every N consecutive workers shared a host (0\: the real topology).]:ranks-per-host:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_bench_conv() {
    local -i ret=1
    local -ar arg_specs=(
        '--batch[Batch size.]:batch:'
        '--reps[Timed repetitions.]:reps:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_version() {
    local -i ret=1
    local -ar arg_specs=(
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_ringtrain_help() {
    local -i ret=1
    local -ar arg_specs=(
        '*:subcommands:'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

if [[ "${funcstack[1]}" = _ringtrain ]]; then
    _ringtrain "${@}"
else
    compdef _ringtrain ringtrain
fi
