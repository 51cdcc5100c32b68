/**
 * `kubectl nkvm completion bash|zsh|fish|powershell`: prints the shell's completion script. The
 * completions themselves come from the plugin (`kubectl-nkvm __complete ...`, or a run under the name
 * kubectl_complete-nkvm, as kubectl 1.26+ asks plugins): see ../completion/protocol.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { completionScript, SHELLS, type Shell } from '../completion/scripts.ts';
import type { GlobalOptions } from '../global-options.ts';
import { writeResult } from '../output.ts';
import { listing } from './index.ts';

interface CompletionArgs extends GlobalOptions {
  shell: Shell;
}

export const completionCommand: CommandModule<GlobalOptions, CompletionArgs> = {
  ...listing('completion'),
  builder: (argv) =>
    argv
      .positional('shell', { choices: SHELLS, demandOption: true, description: 'The shell to print the script for' })
      .example('source <(kubectl nkvm completion bash)', 'bash: complete `kubectl nkvm` in this shell (add it to ~/.bashrc, after kubectl\'s own completion)')
      .example('source <(kubectl nkvm completion zsh)', 'zsh: the same (in ~/.zshrc, after compinit)')
      .example('kubectl nkvm completion fish | source', 'fish: the same')
      .example('kubectl nkvm completion powershell | Out-String | Invoke-Expression', 'PowerShell: complete `kubectl-nkvm`')
      .example('ln -s kubectl-nkvm "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-nkvm"', 'kubectl 1.26+: kubectl\'s own completion completes `kubectl nkvm` (Linux, macOS; on Windows copy kubectl_complete-nkvm.cmd from the release archive next to kubectl-nkvm.exe)')
      .epilogue(
        'kubectl 1.26 or newer completes a plugin\'s arguments itself by running kubectl_complete-nkvm from PATH. ' +
          'Krew cannot install that second executable, so link it once after installing (the link keeps working across upgrades; ' +
          'remove it after uninstalling). The release archive also holds it as a script that runs kubectl-nkvm.',
      ) as unknown as Argv<CompletionArgs>,
  handler: (args) => {
    writeResult(completionScript(args.shell));
  },
};
