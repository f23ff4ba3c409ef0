function __ringtrain_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __ringtrain_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __ringtrain_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __ringtrain_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __ringtrain_parse_tokens -S
    set -l unparsed_tokens (__ringtrain_tokens -pc)
    switch $unparsed_tokens[1]
    case 'ringtrain'
        __ringtrain_parse_subcommand 0 'h/help'
        switch $unparsed_tokens[1]
        case 'train'
            __ringtrain_parse_subcommand 1 'data=' 'epochs=' 'batch-size=' 'lr=' 'seed=' 'checkpoint-dir=' 'run-dir=' 'set=+' 'q/quiet' 'v/verbose' 'resume=' 'init-from=' 'init-partial' 'threads=' 'h/help'
        case 'launch'
            __ringtrain_parse_subcommand 1 'data=' 'epochs=' 'batch-size=' 'lr=' 'seed=' 'checkpoint-dir=' 'run-dir=' 'set=+' 'q/quiet' 'v/verbose' 'workers=' 'max-restarts=' 'min-workers=' 'resume=' 'init-from=' 'init-partial' 'threads=' 'h/help'
        case 'coordinator'
            __ringtrain_parse_subcommand 1 'data=' 'epochs=' 'batch-size=' 'lr=' 'seed=' 'checkpoint-dir=' 'run-dir=' 'set=+' 'q/quiet' 'v/verbose' 'listen=' 'workers=' 'min-workers=' 'resume=' 'init-from=' 'init-partial' 'rendezvous-timeout=' 'curve-key=' 'authorized-keys=+' 'coordinator-key=' 'h/help'
        case 'worker'
            __ringtrain_parse_subcommand 1 'coordinator=' 'bind=' 'rank=' 'q/quiet' 'v/verbose' 'rendezvous-timeout=' 'curve-key=' 'authorized-keys=+' 'coordinator-key=' 'h/help'
        case 'keygen'
            __ringtrain_parse_subcommand 1 'h/help'
        case 'config'
            __ringtrain_parse_subcommand 1 'data=' 'epochs=' 'batch-size=' 'lr=' 'seed=' 'checkpoint-dir=' 'run-dir=' 'set=+' 'h/help'
        case 'eval'
            __ringtrain_parse_subcommand 1 'split=' 'data=' 'context=' 'set=+' 'threads=' 'h/help'
        case 'predict'
            __ringtrain_parse_subcommand 2 'out=' 'format=' 'batch-size=' 'tokens=' 'temperature=' 'threads=' 'h/help'
        case 'generate'
            __ringtrain_parse_subcommand 1 'prompt=' 'tokens=' 'temperature=' 'top-k=' 'seed=' 'threads=' 'h/help'
        case 'inspect'
            __ringtrain_parse_subcommand 1 'json' 'h/help'
        case 'plot'
            __ringtrain_parse_subcommand -r 1 'out=' 'h/help'
        case 'export-model'
            __ringtrain_parse_subcommand 1 'out=' 'seed=' 'h/help'
        case 'summary'
            __ringtrain_parse_subcommand 1 'model=' 'h/help'
        case 'bench'
            __ringtrain_parse_subcommand 0 'h/help'
            switch $unparsed_tokens[1]
            case 'train'
                __ringtrain_parse_subcommand 0 'model=' 'batch=' 'epochs=' 'threads=' 'data=' 'h/help'
            case 'layers'
                __ringtrain_parse_subcommand 1 'batch=' 'reps=' 'threads=' 'h/help'
            case 'allreduce'
                __ringtrain_parse_subcommand 0 'workers=' 'size=+' 'iters=' 'chunk=' 'bind=+' 'rendezvous-host=' 'wrap=' 'transport=' 'buffers=' 'compression=' 'ranks-per-host=' 'h/help'
            case 'conv'
                __ringtrain_parse_subcommand 0 'batch=' 'reps=' 'h/help'
            end
        case 'version'
            __ringtrain_parse_subcommand 0 'h/help'
        case 'help'
            __ringtrain_parse_subcommand -r 1 
        end
    end
end

function __ringtrain_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __ringtrain_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __ringtrain_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __ringtrain_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__ringtrain_tokens -p)
    if test -z "$(__ringtrain_tokens -t)"
        set -l index (count (__ringtrain_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'ringtrain' -f
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'train' -d 'Train in one process (the single-node fallback: world size 1, no sockets).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'launch' -d 'Train with a coordinator and N worker processes on this host (like torchrun --nproc-per-node).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'coordinator' -d 'Run the coordinator of a job whose workers run on other hosts (ringtrain worker).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'worker' -d 'Run one worker; it learns its rank, peers and job from the coordinator.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'keygen' -d 'Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'config' -d 'Print the fully resolved job (file, flags and --set applied, defaults filled in) as YAML.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'eval' -d 'Evaluate a checkpoint on a split of its data, other data, or another context length.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'predict' -d 'Predict with a checkpoint: IDX, .npy or CSV inputs → CSV or .npy of predictions; text prompts → generated text.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'generate' -d 'Generate text from a language-model checkpoint (key/value cache, temperature, top-k).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'inspect' -d 'Show what a checkpoint holds: progress, model, data, tensors.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'plot' -d 'Plot runs: SVG curves (loss, metrics, lr, throughput; several runs overlaid) and a self-contained HTML report.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'export-model' -d 'Export a model\'s weights (PyTorch state_dict names, no optimizer state) with its spec and one forward pass, for PyTorch.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'summary' -d 'Print each layer\'s output shape, parameters and forward FLOPs (per sample), with totals.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'bench' -d 'Benchmarks that print figures comparable with the reference scripts.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'version' -d 'Print versions of RingTrain and the libraries it links.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" data' -l 'data' -d 'The data: a named dataset\'s directory of IDX files (data.path), or the training file (data.train).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" epochs' -l 'epochs' -d 'Number of epochs (overrides train.epochs).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" batch-size' -l 'batch-size' -d 'Per-worker batch size (overrides train.batch_size).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" lr' -l 'lr' -d 'Base learning rate (overrides optimizer.lr).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" seed' -l 'seed' -d 'Random seed (overrides seed).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" checkpoint-dir' -l 'checkpoint-dir' -d 'Checkpoint directory (overrides checkpoint.dir: relative paths are inside the run directory; empty string disables checkpoints).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" run-dir' -l 'run-dir' -d 'Run directory for the job, log, metrics, TensorBoard events and checkpoints (default: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train"' -l 'set' -d 'Override any job field: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" q quiet' -l 'quiet' -s 'q' -d 'Print only warnings and errors (and the final result); the run\'s log.txt still gets every line.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" v verbose' -l 'verbose' -s 'v' -d 'Also print details: every rank\'s set-up (ring edges, transport), not only rank 0\'s.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" resume' -l 'resume' -d 'Resume from a checkpoint, a run directory (its newest checkpoint) or \'last\' (the newest run): parameters, optimizer, progress, RNG.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" init-from' -l 'init-from' -d 'Start a fresh run from the weights in this safetensors file (or a run directory\'s newest checkpoint, or last).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" init-partial' -l 'init-partial' -d 'With --init-from: take only the tensors whose names and shapes match (fine-tuning with a new head); report the rest.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" threads' -l 'threads' -d 'OpenBLAS threads (default: OPENBLAS_NUM_THREADS or all cores).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain train" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" data' -l 'data' -d 'The data: a named dataset\'s directory of IDX files (data.path), or the training file (data.train).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" epochs' -l 'epochs' -d 'Number of epochs (overrides train.epochs).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" batch-size' -l 'batch-size' -d 'Per-worker batch size (overrides train.batch_size).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" lr' -l 'lr' -d 'Base learning rate (overrides optimizer.lr).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" seed' -l 'seed' -d 'Random seed (overrides seed).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" checkpoint-dir' -l 'checkpoint-dir' -d 'Checkpoint directory (overrides checkpoint.dir: relative paths are inside the run directory; empty string disables checkpoints).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" run-dir' -l 'run-dir' -d 'Run directory for the job, log, metrics, TensorBoard events and checkpoints (default: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch"' -l 'set' -d 'Override any job field: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" q quiet' -l 'quiet' -s 'q' -d 'Print only warnings and errors (and the final result); the run\'s log.txt still gets every line.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" v verbose' -l 'verbose' -s 'v' -d 'Also print details: every rank\'s set-up (ring edges, transport), not only rank 0\'s.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" workers' -l 'workers' -d 'Worker processes.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" max-restarts' -l 'max-restarts' -d 'Restart the whole job from the newest checkpoint up to this many times after a failure.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" min-workers' -l 'min-workers' -d 'Elastic: go on without a dead worker while at least this many remain (1 to --workers).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" resume' -l 'resume' -d 'Resume from a checkpoint, a run directory or \'last\' (any world size).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" init-from' -l 'init-from' -d 'Start a fresh run from the weights in this safetensors file.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" init-partial' -l 'init-partial' -d 'With --init-from: take only the tensors whose names and shapes match; report the rest.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" threads' -l 'threads' -d 'BLAS threads per worker (default: the cores shared out).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain launch" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" data' -l 'data' -d 'The data: a named dataset\'s directory of IDX files (data.path), or the training file (data.train).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" epochs' -l 'epochs' -d 'Number of epochs (overrides train.epochs).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" batch-size' -l 'batch-size' -d 'Per-worker batch size (overrides train.batch_size).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" lr' -l 'lr' -d 'Base learning rate (overrides optimizer.lr).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" seed' -l 'seed' -d 'Random seed (overrides seed).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" checkpoint-dir' -l 'checkpoint-dir' -d 'Checkpoint directory (overrides checkpoint.dir: relative paths are inside the run directory; empty string disables checkpoints).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" run-dir' -l 'run-dir' -d 'Run directory for the job, log, metrics, TensorBoard events and checkpoints (default: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator"' -l 'set' -d 'Override any job field: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" q quiet' -l 'quiet' -s 'q' -d 'Print only warnings and errors (and the final result); the run\'s log.txt still gets every line.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" v verbose' -l 'verbose' -s 'v' -d 'Also print details: every rank\'s set-up (ring edges, transport), not only rank 0\'s.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" listen' -l 'listen' -d 'Endpoint to listen on, e.g. tcp://0.0.0.0:29500.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" workers' -l 'workers' -d 'Number of workers to wait for.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" min-workers' -l 'min-workers' -d 'Elastic: go on without lost workers while at least this many remain, and admit workers that arrive later (ringtrain worker --coordinator …) up to --workers.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" resume' -l 'resume' -d 'Resume every worker from a checkpoint, a run directory or \'last\' (read by rank 0).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" init-from' -l 'init-from' -d 'Every worker starts a fresh run from the weights in this file (a path each worker can read).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" init-partial' -l 'init-partial' -d 'With --init-from: take only the tensors whose names and shapes match; report the rest.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" rendezvous-timeout' -l 'rendezvous-timeout' -d 'Seconds to wait for every worker to arrive.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" curve-key' -l 'curve-key' -d 'CURVE key pair of this process (a .key file from ringtrain keygen); turns encryption on.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator"' -l 'authorized-keys' -d 'Coordinator: public keys allowed to join (.pub files or directories of them; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" coordinator-key' -l 'coordinator-key' -d 'Worker: the coordinator\'s public key (.pub file).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain coordinator" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" coordinator' -l 'coordinator' -d 'Coordinator endpoint, e.g. tcp://10.0.0.1:29500.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" bind' -l 'bind' -d 'Address for this worker\'s ring input (default: the address that reaches the coordinator).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" rank' -l 'rank' -d 'Rank to ask for.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" q quiet' -l 'quiet' -s 'q' -d 'Print only warnings and errors (and the final result); the run\'s log.txt still gets every line.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" v verbose' -l 'verbose' -s 'v' -d 'Also print details: every rank\'s set-up (ring edges, transport), not only rank 0\'s.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" rendezvous-timeout' -l 'rendezvous-timeout' -d 'Seconds to wait for the coordinator\'s answer (its WELCOME) before giving up.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" curve-key' -l 'curve-key' -d 'CURVE key pair of this process (a .key file from ringtrain keygen); turns encryption on.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker"' -l 'authorized-keys' -d 'Coordinator: public keys allowed to join (.pub files or directories of them; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" coordinator-key' -l 'coordinator-key' -d 'Worker: the coordinator\'s public key (.pub file).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain worker" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain keygen" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" data' -l 'data' -d 'The data: a named dataset\'s directory of IDX files (data.path), or the training file (data.train).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" epochs' -l 'epochs' -d 'Number of epochs (overrides train.epochs).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" batch-size' -l 'batch-size' -d 'Per-worker batch size (overrides train.batch_size).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" lr' -l 'lr' -d 'Base learning rate (overrides optimizer.lr).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" seed' -l 'seed' -d 'Random seed (overrides seed).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" checkpoint-dir' -l 'checkpoint-dir' -d 'Checkpoint directory (overrides checkpoint.dir: relative paths are inside the run directory; empty string disables checkpoints).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" run-dir' -l 'run-dir' -d 'Run directory for the job, log, metrics, TensorBoard events and checkpoints (default: $RINGTRAIN_RUNS or runs, then <name>-<yyyymmdd-hhmmss>). It must not hold another run.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config"' -l 'set' -d 'Override any job field: --set train.max_steps=500, --set model.layers.1.out=64 (a YAML value; repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain config" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval" split' -l 'split' -d 'Split to evaluate: test, validation or train.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval" data' -l 'data' -d 'Data instead of the job\'s: a training file or directory (data.train), split as the job splits it.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval" context' -l 'context' -d 'Sequence models: tokens per sample (model.input and data.text.context); learned positions cannot go past their table.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval"' -l 'set' -d 'Override a field of the checkpoint\'s job (repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval" threads' -l 'threads' -d 'Threads (default: OPENBLAS_NUM_THREADS or all cores).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain eval" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" out' -l 'out' -d 'Output file: .csv or .npy (default: CSV on standard output).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" format' -l 'format' -d 'Input format when the name does not tell: idx, npy, csv, text.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" batch-size' -l 'batch-size' -d 'Samples per forward pass.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" tokens' -l 'tokens' -d 'Language models: tokens to generate per prompt.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" temperature' -l 'temperature' -d 'Language models: sampling temperature (0: the most likely token).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" threads' -l 'threads' -d 'Threads (default: OPENBLAS_NUM_THREADS or all cores).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain predict" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" prompt' -l 'prompt' -d 'Text to continue (every character must be in the model\'s vocabulary).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" tokens' -l 'tokens' -d 'Tokens to generate.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" temperature' -l 'temperature' -d 'Softmax temperature; 0 picks the most likely token every time.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" top-k' -l 'top-k' -d 'Draw from the k most likely tokens only (0: all).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" seed' -l 'seed' -d 'Random seed of the draws.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" threads' -l 'threads' -d 'Threads (default: OPENBLAS_NUM_THREADS or all cores).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain generate" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain inspect" json' -l 'json' -d 'Print one JSON object instead of text.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain inspect" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain plot" out' -l 'out' -d 'Directory for loss.svg, lr.svg, throughput.svg, metric-*.svg and report.html.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain plot" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain export-model" out' -l 'out' -d 'Output safetensors file (a directory with `all`).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain export-model" seed' -l 'seed' -d 'Seed.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain export-model" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain summary" model' -l 'model' -d 'A zoo model instead of a job file (mlp, cnn, cnn_bn, resnet_small, …).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain summary" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain bench" -eq 1' -fa 'train' -d 'Single-process training throughput.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain bench" -eq 1' -fa 'layers' -d 'Time each layer\'s forward and backward.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain bench" -eq 1' -fa 'allreduce' -d 'Ring all-reduce bandwidth between local worker processes (nccl-tests columns).'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_positional "ringtrain bench" -eq 1' -fa 'conv' -d 'Conv2D and Linear GFLOP/s against raw sgemm on the same shapes.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" model' -l 'model' -d 'Model from the zoo (mlp, cnn, cnn_bn, resnet_small, …).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" batch' -l 'batch' -d 'Batch size.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" epochs' -l 'epochs' -d 'Epochs to time (the first is included).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" threads' -l 'threads' -d 'OpenBLAS threads.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" data' -l 'data' -d 'Dataset directory.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench train" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench layers" batch' -l 'batch' -d 'Batch size.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench layers" reps' -l 'reps' -d 'Timed repetitions.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench layers" threads' -l 'threads' -d 'OpenBLAS threads.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench layers" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" workers' -l 'workers' -d 'Worker processes.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce"' -l 'size' -d 'Buffer size, e.g. 4KiB, 64MiB (repeatable).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" iters' -l 'iters' -d 'Timed iterations per size (default: enough for ~0.5 s, at least 5).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" chunk' -l 'chunk' -d 'Frame size.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce"' -l 'bind' -d 'Address the workers bind their ring inputs to (repeat once per rank to give each its own).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" rendezvous-host' -l 'rendezvous-host' -d 'Address the rendezvous listens on (must be reachable from every worker).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" wrap' -l 'wrap' -d 'Command prefix for each worker, {rank} and {host} (rank / --ranks-per-host) replaced (e.g. "ip netns exec rt-h{rank}").' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" transport' -l 'transport' -d 'auto: shared memory between processes on one host, TCP otherwise; tcp: TCP only.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" buffers' -l 'buffers' -d 'shared: buffers from the communicator (as the trainer\'s gradients), all-reduced in place when every worker is on one host; private: each worker\'s own memory, through the ring.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" compression' -l 'compression' -d 'none, or bf16: buckets travel the ring as bfloat16 (results checked to bf16 precision).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" ranks-per-host' -l 'ranks-per-host' -d 'Act as if every N consecutive workers shared a host (0: the real topology).' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench allreduce" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench conv" batch' -l 'batch' -d 'Batch size.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench conv" reps' -l 'reps' -d 'Timed repetitions.' -rfka ''
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain bench conv" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringtrain' -n '__ringtrain_should_offer_completions_for_flags_or_options "ringtrain version" h help' -s 'h' -l 'help' -d 'Show help information.'
