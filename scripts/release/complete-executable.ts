/**
 * kubectl_complete-nkvm, shipped in every release archive beside the executable: kubectl 1.26 or newer
 * runs `kubectl_complete-nkvm WORD...` from PATH when TAB is pressed after `kubectl nkvm `, and this
 * hands the words to `kubectl-nkvm __complete`, which answers (see src/cli/completion/protocol.ts).
 *
 * Krew links only the plugin's executable onto PATH (kubernetes-sigs/krew#812), so the user puts this
 * on PATH once: a copy or a link of it, or simply a link named kubectl_complete-nkvm to kubectl-nkvm
 * itself, which answers completion requests when run under that name. The script runs the
 * kubectl-nkvm beside it (krew's bin directory, when copied or linked there), else the one on PATH,
 * and needs no other command (not even dirname), so it works in a PATH with nothing but the plugin.
 */
import type { Platform } from './config.ts';

export const COMPLETE_NAME = 'kubectl_complete-nkvm';

export const COMPLETE_SCRIPT_SH = `#!/bin/sh
# kubectl (1.26 or newer) runs this when TAB is pressed after \`kubectl nkvm \`, with the words typed
# after \`kubectl nkvm\`; kubectl-nkvm answers with the completions.
# Put it on PATH once, e.g. next to kubectl-nkvm:
#   cp kubectl_complete-nkvm "\${KREW_ROOT:-$HOME/.krew}/bin/"
case $0 in
  */*) if [ -x "\${0%/*}/kubectl-nkvm" ]; then exec "\${0%/*}/kubectl-nkvm" __complete "$@"; fi ;;
esac
command -v kubectl-nkvm >/dev/null 2>&1 || exit 0
exec kubectl-nkvm __complete "$@"
`;

/** The same for Windows, where kubectl finds a .cmd on PATH through PATHEXT. CRLF line ends. */
export const COMPLETE_SCRIPT_CMD = [
  '@echo off',
  'rem kubectl (1.26 or newer) runs this when TAB is pressed after "kubectl nkvm ", with the words typed',
  'rem after "kubectl nkvm"; kubectl-nkvm.exe answers with the completions.',
  'rem Put it on PATH once, next to kubectl-nkvm.exe: copy it into %USERPROFILE%\\.krew\\bin',
  'setlocal',
  'set "nkvm=%~dp0kubectl-nkvm.exe"',
  'if not exist "%nkvm%" set "nkvm=kubectl-nkvm.exe"',
  '"%nkvm%" __complete %*',
  '',
].join('\r\n');

export const completeName = (p: Pick<Platform, 'os'>): string => (p.os === 'windows' ? `${COMPLETE_NAME}.cmd` : COMPLETE_NAME);

export function completeScript(p: Pick<Platform, 'os'>): string {
  return p.os === 'windows' ? COMPLETE_SCRIPT_CMD : COMPLETE_SCRIPT_SH;
}
