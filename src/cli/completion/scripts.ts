/**
 * The scripts `kubectl nkvm completion SHELL` prints. Each asks the plugin itself
 * (`kubectl-nkvm __complete WORD...`, the protocol in protocol.ts) and hands the answer to its shell,
 * for `kubectl-nkvm ...` and, where the shell allows wrapping kubectl's own completion (bash, zsh,
 * fish), for `kubectl nkvm ...`.
 */
import { Directive } from './engine.ts';

export const SHELLS = ['bash', 'zsh', 'fish', 'powershell'] as const;
export type Shell = (typeof SHELLS)[number];

const { error, noSpace, noFileComp, filterDirs, keepOrder } = Directive;

const bash = `# bash completion for kubectl nkvm                                  -*- shell-script -*-
#
# Completes \`kubectl nkvm ...\` (kubectl's own completion, if loaded, keeps answering everything
# else) and \`kubectl-nkvm ...\`.
#   This shell:       source <(kubectl nkvm completion bash)
#   Every new shell:  put that line in ~/.bashrc, after kubectl's own completion if you load it
#                     (source <(kubectl completion bash)).
# kubectl 1.26 or newer also completes \`kubectl nkvm\` by itself once kubectl_complete-nkvm is on
# PATH: see \`kubectl nkvm completion --help\`.

# Sets __kubectl_nkvm_words to COMP_WORDS from index $1 to the word under the cursor, joining what
# bash split at = and : (COMP_WORDBREAKS): --namespace=dev and --context=arn:aws:... stay one word.
__kubectl_nkvm_split_words() {
    local first=$1 line=\${COMP_LINE:0:COMP_POINT} i word blank n
    __kubectl_nkvm_words=()
    for ((i = 0; i <= COMP_CWORD; i++)); do
        word=\${COMP_WORDS[i]}
        blank=\${line%%[![:blank:]]*}
        line=\${line:\${#blank}}
        line=\${line#"$word"}
        ((i < first)) && continue
        n=\${#__kubectl_nkvm_words[@]}
        if ((n > 0)) && [[ -z $blank ]] && [[ $word == [=:]* || \${__kubectl_nkvm_words[n-1]} == *[=:] ]]; then
            __kubectl_nkvm_words[n-1]+=$word
        else
            __kubectl_nkvm_words+=("$word")
        fi
    done
}

# Fills COMPREPLY for the plugin's arguments, which start at index $1 of COMP_WORDS.
__kubectl_nkvm_complete() {
    local __kubectl_nkvm_words=() lines=() values=() descriptions=()
    local cur out line value description directive=0 prefix="" strip="" breaks="" tab=$'\\t' i last longest=0 width
    COMPREPLY=()
    __kubectl_nkvm_split_words "$1"
    cur=\${__kubectl_nkvm_words[\${#__kubectl_nkvm_words[@]}-1]}
    out=$(kubectl-nkvm __complete "\${__kubectl_nkvm_words[@]}" 2>/dev/null) || return 0
    while IFS='' read -r line; do lines+=("$line"); done <<<"$out"
    last=$((\${#lines[@]} - 1))
    if ((last >= 0)) && [[ \${lines[last]} =~ ^:([0-9]+)$ ]]; then
        directive=\${BASH_REMATCH[1]}
        unset "lines[$last]"
    fi
    ((directive & ${error})) && return 0
    ((directive & ${noSpace})) && compopt -o nospace 2>/dev/null
    ((directive & ${noFileComp})) && compopt +o default 2>/dev/null
    ((directive & ${keepOrder})) && compopt -o nosort 2>/dev/null
    if ((directive & ${filterDirs})); then
        compopt -o filenames 2>/dev/null
        [[ $cur == -*=* ]] && cur=\${cur#*=}
        while IFS='' read -r line; do COMPREPLY+=("$line"); done < <(compgen -d -- "$cur")
        return 0
    fi
    # --flag=value: the answer is values; the word is the flag and the value.
    [[ $cur == -*=* ]] && prefix=\${cur%%=*}=
    for line in "\${lines[@]}"; do
        [[ -z $line ]] && continue
        value=$prefix\${line%%"$tab"*}
        [[ $value == "$cur"* ]] || continue
        description=""
        [[ $line == *"$tab"* ]] && description=\${line#*"$tab"}
        values+=("$value")
        descriptions+=("$description")
    done
    # Readline replaces only what follows the last = or : that breaks words.
    [[ $COMP_WORDBREAKS == *=* ]] && breaks+="="
    [[ $COMP_WORDBREAKS == *:* ]] && breaks+=":"
    [[ -n $breaks && $cur == *[$breaks]* ]] && strip=\${cur%"\${cur##*[$breaks]}"}
    for i in "\${!values[@]}"; do
        values[i]=\${values[i]#"$strip"}
        ((\${#values[i]} > longest)) && longest=\${#values[i]}
    done
    # One candidate, or candidates inserted one at a time (menu-complete, insert-completions): no descriptions.
    if ((\${#values[@]} <= 1)) || [[ \${COMP_TYPE:-} == 37 || \${COMP_TYPE:-} == 42 ]]; then
        COMPREPLY=("\${values[@]}")
        return 0
    fi
    width=\${COLUMNS:-80}
    for i in "\${!values[@]}"; do
        value=\${values[i]}
        if [[ -n \${descriptions[i]} ]] && ((width - longest > 12)); then
            printf -v value '%-*s  (%s)' "$longest" "$value" "\${descriptions[i]}"
            ((\${#value} >= width)) && value="\${value:0:width-3}…)"
        fi
        COMPREPLY+=("$value")
    done
    return 0
}

_kubectl_nkvm() {
    __kubectl_nkvm_complete 1
}
complete -o default -F _kubectl_nkvm kubectl-nkvm

# kubectl nkvm ...: kubectl's completion is wrapped; its own function answers everything else.
__kubectl_nkvm_kubectl_function=""
__kubectl_nkvm_loader_tried=""

__kubectl_nkvm_wrap_kubectl() {
    local spec
    spec=$(complete -p kubectl 2>/dev/null)
    if [[ $spec =~ [[:blank:]]-F[[:blank:]]+([^[:blank:]]+) ]]; then
        [[ \${BASH_REMATCH[1]} == _kubectl_nkvm_kubectl ]] && return 0
        __kubectl_nkvm_kubectl_function=\${BASH_REMATCH[1]}
        eval "\${spec/-F \${BASH_REMATCH[1]}/-F _kubectl_nkvm_kubectl}"
    elif [[ -z $spec ]]; then
        complete -o default -F _kubectl_nkvm_kubectl kubectl
    fi
}

_kubectl_nkvm_kubectl() {
    if ((COMP_CWORD >= 2)) && [[ \${COMP_WORDS[1]} == nkvm ]]; then
        __kubectl_nkvm_complete 2
        return
    fi
    if [[ -z $__kubectl_nkvm_kubectl_function && -z $__kubectl_nkvm_loader_tried ]]; then
        # bash-completion loads kubectl's completion on first use: let it, then wrap what it set.
        __kubectl_nkvm_loader_tried=1
        if declare -F __load_completion >/dev/null; then __load_completion kubectl >/dev/null 2>&1
        elif declare -F _comp_load >/dev/null; then _comp_load kubectl >/dev/null 2>&1
        fi
        __kubectl_nkvm_wrap_kubectl
    fi
    if [[ -n $__kubectl_nkvm_kubectl_function ]]; then
        "$__kubectl_nkvm_kubectl_function" "$@"
    elif ((COMP_CWORD == 1)) && [[ nkvm == "\${COMP_WORDS[1]}"* ]]; then
        COMPREPLY=(nkvm)
    fi
}
__kubectl_nkvm_wrap_kubectl
`;

const zsh = `#compdef kubectl-nkvm
# zsh completion for kubectl nkvm
#
# Completes \`kubectl nkvm ...\` (kubectl's own completion, if loaded, keeps answering everything
# else) and \`kubectl-nkvm ...\`.
#   This shell:       source <(kubectl nkvm completion zsh)
#   Every new shell:  put that line in ~/.zshrc, after compinit and after kubectl's own completion if
#                     you load it (source <(kubectl completion zsh)).
# kubectl 1.26 or newer also completes \`kubectl nkvm\` by itself once kubectl_complete-nkvm is on
# PATH: see \`kubectl nkvm completion --help\`.

# Completes the plugin's arguments, which start at index $1 of $words.
__kubectl_nkvm_complete() {
    local -a args lines candidates options
    local out line value description directive=0 cur=\${words[CURRENT]}
    args=("\${(@)words[$1,CURRENT]}")
    out=$(kubectl-nkvm __complete "\${args[@]}" 2>/dev/null) || return 1
    lines=("\${(@f)out}")
    if [[ \${lines[-1]} == :<-> ]]; then
        directive=\${lines[-1]#:}
        lines[-1]=()
    fi
    (( directive & ${error} )) && return 1
    # --flag=value: zsh completes what follows the =.
    [[ $cur == -*=* ]] && compset -P '*='
    if (( directive & ${filterDirs} )); then
        _path_files -/
        return
    fi
    for line in "\${lines[@]}"; do
        [[ -z $line ]] && continue
        value=\${line%%$'\\t'*}
        description=""
        [[ $line == *$'\\t'* ]] && description=\${line#*$'\\t'}
        candidates+=("\${value//:/\\\\:}\${description:+:$description}")
    done
    (( directive & ${noSpace} )) && options+=(-S '')
    if (( \${#candidates} )); then
        if (( directive & ${keepOrder} )); then
            _describe -V -t kubectl-nkvm 'kubectl nkvm' candidates "\${options[@]}"
        else
            _describe -t kubectl-nkvm 'kubectl nkvm' candidates "\${options[@]}"
        fi
        return
    fi
    (( directive & ${noFileComp} )) || _files
}

_kubectl_nkvm() {
    __kubectl_nkvm_complete 2
}

# kubectl nkvm ...: kubectl's completion is wrapped; its own function answers everything else.
_kubectl_nkvm_kubectl() {
    if (( CURRENT > 2 )) && [[ \${words[2]} == nkvm ]]; then
        __kubectl_nkvm_complete 3
    elif [[ -n \${__kubectl_nkvm_kubectl_function:-} ]]; then
        "$__kubectl_nkvm_kubectl_function" "$@"
    elif (( CURRENT == 2 )); then
        compadd nkvm
    fi
}

if (( ! \${+functions[compdef]} )); then
    print -u2 'kubectl nkvm completion: run compinit (autoload -U compinit && compinit) before loading this'
    return 1
fi
compdef _kubectl_nkvm kubectl-nkvm
if [[ \${_comps[kubectl]:-} != _kubectl_nkvm_kubectl ]]; then
    typeset -g __kubectl_nkvm_kubectl_function=\${_comps[kubectl]:-}
    compdef _kubectl_nkvm_kubectl kubectl
fi
`;

const fish = `# fish completion for kubectl nkvm
#
# Completes \`kubectl nkvm ...\` (alongside kubectl's own completion, if loaded) and \`kubectl-nkvm ...\`.
#   This shell:       kubectl nkvm completion fish | source
#   Every new shell:  kubectl nkvm completion fish > ~/.config/fish/completions/kubectl-nkvm.fish
#                     (and, for \`kubectl nkvm\`, source that file from ~/.config/fish/config.fish)
# kubectl 1.26 or newer also completes \`kubectl nkvm\` by itself once kubectl_complete-nkvm is on
# PATH: see \`kubectl nkvm completion --help\`.

# Prints the candidates for the plugin's arguments; $argv[1] tokens name the plugin (1 or 2).
function __kubectl_nkvm_complete
    set -l args (commandline -opc)
    set -e args[1..$argv[1]]
    set -l current (commandline -ct)
    set -l out (kubectl-nkvm __complete $args "$current" 2>/dev/null)
    or return
    set -l directive 0
    if string match -qr '^:[0-9]+$' -- "$out[-1]"
        set directive (string sub -s 2 -- $out[-1])
        set -e out[-1]
    end
    test (math "bitand($directive, ${error})") -ne 0; and return
    set -l prefix ''
    string match -qr -- '^-[^=]*=' "$current"; and set prefix (string replace -r -- '=.*' '=' "$current")
    if test (math "bitand($directive, ${filterDirs})") -ne 0
        __fish_complete_directories (string replace -r -- '^-[^=]*=' '' "$current") | string replace -r -- '^' "$prefix"
        return
    end
    for line in $out
        test -n "$line"; and printf '%s%s\\n' "$prefix" "$line"
    end
    if test (count $out) -eq 0; and test (math "bitand($directive, ${noFileComp})") -eq 0
        __fish_complete_path "$current"
    end
end

function __kubectl_nkvm_is_plugin
    set -l tokens (commandline -opc)
    test (count $tokens) -ge 2; and test "$tokens[2]" = nkvm
end

complete -c kubectl-nkvm -f -a '(__kubectl_nkvm_complete 1)'
# fish loads kubectl's own completion on its first use, and that starts by erasing every kubectl
# completion: have it loaded now, so that the one below stays.
type -q kubectl; and complete -C 'kubectl ' >/dev/null 2>&1
complete -c kubectl -n __kubectl_nkvm_is_plugin -f -a '(__kubectl_nkvm_complete 2)'
`;

const powershell = `# powershell completion for kubectl nkvm
#
# Completes \`kubectl-nkvm ...\`. For \`kubectl nkvm ...\`, use kubectl's own completion
# (kubectl completion powershell) with kubectl_complete-nkvm on PATH: see \`kubectl nkvm completion --help\`.
#   This shell:       kubectl nkvm completion powershell | Out-String | Invoke-Expression
#   Every new shell:  add that line to your $PROFILE.

Register-ArgumentCompleter -Native -CommandName 'kubectl-nkvm', 'kubectl-nkvm.exe' -ScriptBlock {
    param($WordToComplete, $CommandAst, $CursorPosition)
    # The words after the plugin's name up to the cursor, and '' for a new word.
    $words = @($CommandAst.CommandElements | Where-Object { $_.Extent.EndOffset -le $CursorPosition } | Select-Object -Skip 1 | ForEach-Object { $_.Extent.Text })
    if ($WordToComplete -eq '') { $words += '' }
    # Windows PowerShell and PowerShell before 7.3 drop empty arguments to native commands.
    $legacy = $PSVersionTable.PSVersion -lt [version]'7.3' -or $PSNativeCommandArgumentPassing -eq 'Legacy'
    $request = @($words | ForEach-Object { if ($_ -eq '' -and $legacy) { '""' } else { $_ } })
    $out = @(& kubectl-nkvm __complete @request 2>$null)
    $directive = 0
    if ($out.Count -gt 0 -and $out[-1] -match '^:(\\d+)$') {
        $directive = [int]$Matches[1]
        $out = @($out | Select-Object -SkipLast 1)
    }
    if ($directive -band ${error}) { return }
    $prefix = ''
    if ($WordToComplete -match '^(-[^=]*=)') { $prefix = $Matches[1] }
    $results = @(foreach ($line in $out) {
        if (-not $line) { continue }
        $value, $description = $line -split "\`t", 2
        $value = $prefix + $value
        if (-not $value.StartsWith($WordToComplete)) { continue }
        if (-not $description) { $description = $value }
        $text = if ($value -match '[\\s''"\`$;,(){}@|&<>]') { "'" + $value.Replace("'", "''") + "'" } else { $value }
        [System.Management.Automation.CompletionResult]::new($text, $value, 'ParameterValue', $description)
    })
    if ($results.Count -gt 0) { return $results }
    # An empty answer stops PowerShell from completing file names instead.
    if ($directive -band ${noFileComp}) { return '' }
}
`;

const SCRIPTS: Record<Shell, string> = { bash, zsh, fish, powershell };

export function completionScript(shell: Shell): string {
  return SCRIPTS[shell];
}
