# Bash completion for `moecap`: subcommands, and each subcommand's options as its --help
# lists them (so the completion never disagrees with the binary). After `--` in
# `moecap record`, completion is the wrapped command's own.
#   source scripts/moecap-completion.bash       (e.g. from ~/.bashrc)
_moecap()
{
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]:-} i
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" --help 2>/dev/null | awk '/^  [a-z]/{print $1}')" -- "$cur"))
        return
    fi
    if [ "$cmd" = record ]; then
        for ((i = 2; i < COMP_CWORD; i++)); do
            if [ "${COMP_WORDS[i]}" = "--" ]; then
                COMP_WORDS=("${COMP_WORDS[@]:i+1}"); COMP_CWORD=$((COMP_CWORD - i - 1))
                _command_offset 0 2>/dev/null || COMPREPLY=($(compgen -c -- "$cur"))
                return
            fi
        done
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "$cmd" --help 2>/dev/null | grep -oE -- '(^|[ [])--?[a-z][a-z-]*' |
                                  tr -d ' [' | sort -u)" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _moecap moecap
