# bash completion for convutell(1); `make install` puts it where
# bash-completion finds it (share/bash-completion/completions/convutell).
_convutell() {
    local cur prev words cword
    _init_completion 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    }
    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "api worker collector scheduler admin routes version help
            login projects jobs run runs logs query schedule" -- "$cur"))
        return
    fi
    case ${words[1]} in
    projects) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "ls" -- "$cur")) ;;
    jobs) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "ls show" -- "$cur")) ;;
    runs) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "ls show cancel" -- "$cur")) ;;
    login) COMPREPLY=($(compgen -W "--name --password-stdin --url" -- "$cur")) ;;
    run) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--follow --param --json --url" -- "$cur")) ;;
    logs) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--follow --grep --json --url" -- "$cur")) ;;
    query) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--origin --destination --csv --max-rows --json --url" -- "$cur")) ;;
    schedule) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--cron --tz --every --pause --resume --off --json --url" -- "$cur")) ;;
    admin)
        if [[ $cword -eq 2 ]]; then
            COMPREPLY=($(compgen -W "create-user rotate-secrets" -- "$cur"))
        elif [[ ${words[2]} == create-user ]]; then
            case $prev in
            --token-file) COMPREPLY=($(compgen -f -- "$cur")) ;;
            --name | --display-name) ;;
            *) COMPREPLY=($(compgen -W "--name --display-name --admin --password-stdin --token-file --exists-ok" -- "$cur")) ;;
            esac
        fi
        ;;
    esac
}
complete -F _convutell convutell
