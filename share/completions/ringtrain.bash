#!/bin/bash

__ringtrain_cursor_index_in_current_word() {
    local remaining="${COMP_LINE}"

    local word
    for word in "${COMP_WORDS[@]::COMP_CWORD}"; do
        remaining="${remaining##*([[:space:]])"${word}"*([[:space:]])}"
    done

    local -ir index="$((COMP_POINT - ${#COMP_LINE} + ${#remaining}))"
    if [[ "${index}" -le 0 ]]; then
        printf 0
    else
        printf %s "${index}"
    fi
}

# positional arguments:
#
# - 1: the current (sub)command's count of positional arguments
#
# required variables:
#
# - repeating_flags: the repeating flags that the current (sub)command can accept
# - non_repeating_flags: the non-repeating flags that the current (sub)command can accept
# - repeating_options: the repeating options that the current (sub)command can accept
# - non_repeating_options: the non-repeating options that the current (sub)command can accept
# - positional_number: value ignored
# - unparsed_words: unparsed words from the current command line
#
# modified variables:
#
# - non_repeating_flags: remove flags for this (sub)command that are already on the command line
# - non_repeating_options: remove options for this (sub)command that are already on the command line
# - positional_number: set to the current positional number
# - unparsed_words: remove all flags, options, and option values for this (sub)command
__ringtrain_offer_flags_options() {
    local -ir positional_count="${1}"
    positional_number=0

    local was_flag_option_terminator_seen=false
    local is_parsing_option_value=false

    local -ar unparsed_word_indices=("${!unparsed_words[@]}")
    local -i word_index
    for word_index in "${unparsed_word_indices[@]}"; do
        if "${is_parsing_option_value}"; then
            # This word is an option value:
            # Reset marker for next word iff not currently the last word
            [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]] && is_parsing_option_value=false
            unset "unparsed_words[${word_index}]"
            # Do not process this word as a flag or an option
            continue
        fi

        local word="${unparsed_words["${word_index}"]}"
        if ! "${was_flag_option_terminator_seen}"; then
            case "${word}" in
            --)
                unset "unparsed_words[${word_index}]"
                # by itself -- is a flag/option terminator, but if it is the last word, it is the start of a completion
                if [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]]; then
                    was_flag_option_terminator_seen=true
                fi
                continue
                ;;
            -*)
                # ${word} is a flag or an option
                # If ${word} is an option, mark that the next word to be parsed is an option value
                local option
                for option in "${repeating_options[@]}" "${non_repeating_options[@]}"; do
                    [[ "${word}" = "${option}" ]] && is_parsing_option_value=true && break
                done

                # Remove ${word} from ${non_repeating_flags} or ${non_repeating_options} so it isn't offered again
                local not_found=true
                local -i index
                for index in "${!non_repeating_flags[@]}"; do
                    if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                        unset "non_repeating_flags[${index}]"
                        non_repeating_flags=("${non_repeating_flags[@]}")
                        not_found=false
                        break
                    fi
                done
                if "${not_found}"; then
                    for index in "${!non_repeating_flags[@]}"; do
                        if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                            unset "non_repeating_flags[${index}]"
                            non_repeating_flags=("${non_repeating_flags[@]}")
                            break
                        fi
                    done
                fi
                unset "unparsed_words[${word_index}]"
                continue
                ;;
            esac
        fi

        # ${word} is neither a flag, nor an option, nor an option value
        if [[ "${positional_number}" -lt "${positional_count}" || "${positional_count}" -lt 0 ]]; then
            # ${word} is a positional
            ((positional_number++))
            unset "unparsed_words[${word_index}]"
        else
            if [[ -z "${word}" ]]; then
                # Could be completing a flag, option, or subcommand
                positional_number=-1
            else
                # ${word} is a subcommand or invalid, so stop processing this (sub)command
                positional_number=-2
            fi
            break
        fi
    done

    unparsed_words=("${unparsed_words[@]}")

    if\
        ! "${was_flag_option_terminator_seen}"\
        && ! "${is_parsing_option_value}"\
        && [[ ("${cur}" = -* && "${positional_number}" -ge 0) || "${positional_number}" -eq -1 ]]
    then
        COMPREPLY+=($(compgen -W "${repeating_flags[*]} ${non_repeating_flags[*]} ${repeating_options[*]} ${non_repeating_options[*]}" -- "${cur}"))
    fi
}

__ringtrain_add_completions() {
    local completion
    while IFS='' read -r completion; do
        COMPREPLY+=("${completion}")
    done < <(IFS=$'\n' compgen "${@}" -- "${cur}")
}

__ringtrain_custom_complete() {
    if [[ -n "${cur}" || -z ${COMP_WORDS[${COMP_CWORD}]} || "${COMP_LINE:${COMP_POINT}:1}" != ' ' ]]; then
        local -ar words=("${COMP_WORDS[@]}")
    else
        local -ar words=("${COMP_WORDS[@]::${COMP_CWORD}}" '' "${COMP_WORDS[@]:${COMP_CWORD}}")
    fi

    "${COMP_WORDS[0]}" "${@}" "${words[@]}"
}

_ringtrain() {
    local state
    state="$(shopt -p;shopt -po)"
    trap "${state//$'\n'/;}" RETURN
    shopt -s extglob
    set +o history +o posix

    local -xr SAP_SHELL=bash
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(IFS='.';printf %s "${BASH_VERSINFO[*]}")"
    local -r SAP_SHELL_VERSION

    local -r cur="${2}"
    local -r prev="${3}"

    local -i positional_number
    local -a unparsed_words=("${COMP_WORDS[@]:1:${COMP_CWORD}}")

    local -a repeating_flags=()
    local -a non_repeating_flags=(-h --help)
    local -a repeating_options=()
    local -a non_repeating_options=()
    __ringtrain_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    train|launch|coordinator|worker|keygen|config|eval|predict|generate|inspect|plot|export-model|summary|bench|version|help)
        # Offer subcommand argument completions
        "_ringtrain_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'train launch coordinator worker keygen config eval predict generate inspect plot export-model summary bench version help' -- "${cur}"))
        ;;
    esac
}

_ringtrain_train() {
    repeating_flags=()
    non_repeating_flags=(--quiet -q --verbose -v --init-partial -h --help)
    repeating_options=(--set)
    non_repeating_options=(--data --epochs --batch-size --lr --seed --checkpoint-dir --run-dir --resume --init-from --threads)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--data')
        return
        ;;
    '--epochs')
        return
        ;;
    '--batch-size')
        return
        ;;
    '--lr')
        return
        ;;
    '--seed')
        return
        ;;
    '--checkpoint-dir')
        return
        ;;
    '--run-dir')
        return
        ;;
    '--set')
        return
        ;;
    '--resume')
        return
        ;;
    '--init-from')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_launch() {
    repeating_flags=()
    non_repeating_flags=(--quiet -q --verbose -v --init-partial -h --help)
    repeating_options=(--set)
    non_repeating_options=(--data --epochs --batch-size --lr --seed --checkpoint-dir --run-dir --workers --max-restarts --min-workers --resume --init-from --threads)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--data')
        return
        ;;
    '--epochs')
        return
        ;;
    '--batch-size')
        return
        ;;
    '--lr')
        return
        ;;
    '--seed')
        return
        ;;
    '--checkpoint-dir')
        return
        ;;
    '--run-dir')
        return
        ;;
    '--set')
        return
        ;;
    '--workers')
        return
        ;;
    '--max-restarts')
        return
        ;;
    '--min-workers')
        return
        ;;
    '--resume')
        return
        ;;
    '--init-from')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_coordinator() {
    repeating_flags=()
    non_repeating_flags=(--quiet -q --verbose -v --init-partial -h --help)
    repeating_options=(--set --authorized-keys)
    non_repeating_options=(--data --epochs --batch-size --lr --seed --checkpoint-dir --run-dir --listen --workers --min-workers --resume --init-from --rendezvous-timeout --curve-key --coordinator-key)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--data')
        return
        ;;
    '--epochs')
        return
        ;;
    '--batch-size')
        return
        ;;
    '--lr')
        return
        ;;
    '--seed')
        return
        ;;
    '--checkpoint-dir')
        return
        ;;
    '--run-dir')
        return
        ;;
    '--set')
        return
        ;;
    '--listen')
        return
        ;;
    '--workers')
        return
        ;;
    '--min-workers')
        return
        ;;
    '--resume')
        return
        ;;
    '--init-from')
        return
        ;;
    '--rendezvous-timeout')
        return
        ;;
    '--curve-key')
        return
        ;;
    '--authorized-keys')
        return
        ;;
    '--coordinator-key')
        return
        ;;
    esac
}

_ringtrain_worker() {
    repeating_flags=()
    non_repeating_flags=(--quiet -q --verbose -v -h --help)
    repeating_options=(--authorized-keys)
    non_repeating_options=(--coordinator --bind --rank --rendezvous-timeout --curve-key --coordinator-key)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--coordinator')
        return
        ;;
    '--bind')
        return
        ;;
    '--rank')
        return
        ;;
    '--rendezvous-timeout')
        return
        ;;
    '--curve-key')
        return
        ;;
    '--authorized-keys')
        return
        ;;
    '--coordinator-key')
        return
        ;;
    esac
}

_ringtrain_keygen() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=()
    __ringtrain_offer_flags_options 1
}

_ringtrain_config() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=(--set)
    non_repeating_options=(--data --epochs --batch-size --lr --seed --checkpoint-dir --run-dir)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--data')
        return
        ;;
    '--epochs')
        return
        ;;
    '--batch-size')
        return
        ;;
    '--lr')
        return
        ;;
    '--seed')
        return
        ;;
    '--checkpoint-dir')
        return
        ;;
    '--run-dir')
        return
        ;;
    '--set')
        return
        ;;
    esac
}

_ringtrain_eval() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=(--set)
    non_repeating_options=(--split --data --context --threads)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--split')
        return
        ;;
    '--data')
        return
        ;;
    '--context')
        return
        ;;
    '--set')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_predict() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--out --format --batch-size --tokens --temperature --threads)
    __ringtrain_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--out')
        return
        ;;
    '--format')
        return
        ;;
    '--batch-size')
        return
        ;;
    '--tokens')
        return
        ;;
    '--temperature')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_generate() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--prompt --tokens --temperature --top-k --seed --threads)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--prompt')
        return
        ;;
    '--tokens')
        return
        ;;
    '--temperature')
        return
        ;;
    '--top-k')
        return
        ;;
    '--seed')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_inspect() {
    repeating_flags=()
    non_repeating_flags=(--json -h --help)
    repeating_options=()
    non_repeating_options=()
    __ringtrain_offer_flags_options 1
}

_ringtrain_plot() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--out)
    __ringtrain_offer_flags_options -1

    # Offer option value completions
    case "${prev}" in
    '--out')
        return
        ;;
    esac
}

_ringtrain_export-model() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--out --seed)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--out')
        return
        ;;
    '--seed')
        return
        ;;
    esac
}

_ringtrain_summary() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--model)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--model')
        return
        ;;
    esac
}

_ringtrain_bench() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=()
    __ringtrain_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    train|layers|allreduce|conv)
        # Offer subcommand argument completions
        "_ringtrain_bench_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'train layers allreduce conv' -- "${cur}"))
        ;;
    esac
}

_ringtrain_bench_train() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--model --batch --epochs --threads --data)
    __ringtrain_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--model')
        return
        ;;
    '--batch')
        return
        ;;
    '--epochs')
        return
        ;;
    '--threads')
        return
        ;;
    '--data')
        return
        ;;
    esac
}

_ringtrain_bench_layers() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--batch --reps --threads)
    __ringtrain_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--batch')
        return
        ;;
    '--reps')
        return
        ;;
    '--threads')
        return
        ;;
    esac
}

_ringtrain_bench_allreduce() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=(--size --bind)
    non_repeating_options=(--workers --iters --chunk --rendezvous-host --wrap --transport --buffers --compression --ranks-per-host)
    __ringtrain_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--workers')
        return
        ;;
    '--size')
        return
        ;;
    '--iters')
        return
        ;;
    '--chunk')
        return
        ;;
    '--bind')
        return
        ;;
    '--rendezvous-host')
        return
        ;;
    '--wrap')
        return
        ;;
    '--transport')
        return
        ;;
    '--buffers')
        return
        ;;
    '--compression')
        return
        ;;
    '--ranks-per-host')
        return
        ;;
    esac
}

_ringtrain_bench_conv() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=(--batch --reps)
    __ringtrain_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--batch')
        return
        ;;
    '--reps')
        return
        ;;
    esac
}

_ringtrain_version() {
    repeating_flags=()
    non_repeating_flags=(-h --help)
    repeating_options=()
    non_repeating_options=()
    __ringtrain_offer_flags_options 0
}

_ringtrain_help() {
    :
}

complete -o filenames -F _ringtrain ringtrain
