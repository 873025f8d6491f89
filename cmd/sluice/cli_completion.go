package main

import (
	"fmt"
	"io"
)

// runCompletion: `sluice completion bash|zsh` prints a completion script:
//
//	source <(sluice completion bash)
func runCompletion(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return fmt.Errorf("%w: sluice completion bash|zsh  (then: source <(sluice completion bash))", errUsage)
	}
	if args[0] == "zsh" {
		fmt.Fprintln(stdout, "autoload -U +X bashcompinit && bashcompinit")
	}
	fmt.Fprint(stdout, bashCompletion)
	return nil
}

const bashCompletion = `_sluice() {
	local cur prev words cword
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	local common="--json --config --admin --token-file --help"
	case "$prev" in
	--config|--token-file|--out|--file|--output|--input) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--state) COMPREPLY=($(compgen -W "queued active held sent bounced expired deleted" -- "$cur")); return ;;
	--stage) COMPREPLY=($(compgen -W "connect greeting ehlo starttls auth mail rcpt data data-end" -- "$cur")); return ;;
	esac
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "serve queue domains limits suppress cluster status events reload explain config dkim token doctor lint completion sendmail help" -- "$cur"))
		return
	fi
	case "${COMP_WORDS[1]}" in
	queue)
		if [ "$COMP_CWORD" -eq 2 ]; then
			COMPREPLY=($(compgen -W "list show summary flush hold release delete bounce backup check export import salvage compact" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$common --domain --state --older-than --limit --after --force --yes --file --tolerant --output --input --out" -- "$cur"))
		fi ;;
	domains) COMPREPLY=($(compgen -W "show $common" -- "$cur")) ;;
	cluster)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "status" -- "$cur"))
		else COMPREPLY=($(compgen -W "$common" -- "$cur")); fi ;;
	limits)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "set reset" -- "$cur"))
		else COMPREPLY=($(compgen -W "$common --max-concurrency --rate" -- "$cur")); fi ;;
	suppress)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "list add remove" -- "$cur"))
		else COMPREPLY=($(compgen -W "$common --reason" -- "$cur")); fi ;;
	events)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "status tail replay" -- "$cur"))
		else COMPREPLY=($(compgen -W "$common --after --since --sink" -- "$cur")); fi ;;
	status|reload) COMPREPLY=($(compgen -W "$common" -- "$cur")) ;;
	explain) COMPREPLY=($(compgen -W "--stage --config --json" -- "$cur")) ;;
	lint) COMPREPLY=($(compgen -W "--json --bulk --disable --shorteners" -- "$cur") $(compgen -f -- "$cur")) ;;
	config) COMPREPLY=($(compgen -W "check" -- "$cur")) ;;
	serve) COMPREPLY=($(compgen -W "--config --new-queue" -- "$cur")) ;;
	completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
	esac
}
complete -F _sluice sluice
`
