// nkvm-runc is an OCI runtime wrapper for machines whose capability bounding set lacks some
// capabilities (for example a VM without CAP_SYS_RESOURCE): runc refuses to start a privileged
// container there ("unable to apply caps: operation not permitted"), and KinD nodes are privileged.
// Registered as dockerd's default runtime, it drops from the container's spec every capability
// outside the bounding set and raises oomScoreAdj to at least this process's own (lowering it needs
// CAP_SYS_RESOURCE too), then execs the real runc with the same arguments.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capabilityNames is the kernel's numbering (include/uapi/linux/capability.h).
var capabilityNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// globalFlagsWithValue are runc's global options that take a separate value, so the subcommand is
// the first argument that is neither one of them, nor their value, nor another option.
var globalFlagsWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

const realRuncDefault = "/usr/sbin/runc"

func main() {
	args := os.Args[1:]
	if err := adjustSpec(args); err != nil {
		// Never block the real runtime: it reports its own error if the spec cannot run.
		fmt.Fprintf(os.Stderr, "nkvm-runc: %v\n", err)
	}
	realRunc := os.Getenv("NKVM_REAL_RUNC")
	if realRunc == "" {
		realRunc = realRuncDefault
	}
	err := syscall.Exec(realRunc, append([]string{realRunc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "nkvm-runc: exec %s: %v\n", realRunc, err)
	os.Exit(127)
}

// specFile names the JSON that runc will read: the bundle's config.json for create/run, the
// process file for exec --process (what `docker exec --privileged` uses).
func specFile(args []string) (path string, isProcess bool) {
	subcommand, rest := "", []string(nil)
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if globalFlagsWithValue[arg] {
			i++
			continue
		}
		if !strings.HasPrefix(arg, "-") {
			subcommand, rest = arg, args[i+1:]
			break
		}
	}
	switch subcommand {
	case "create", "run":
		bundle := "."
		if value, ok := optionValue(rest, "--bundle", "-b"); ok {
			bundle = value
		}
		return filepath.Join(bundle, "config.json"), false
	case "exec":
		if value, ok := optionValue(rest, "--process", "-p"); ok {
			return value, true
		}
	}
	return "", false
}

func optionValue(args []string, long, short string) (string, bool) {
	for i, arg := range args {
		if (arg == long || arg == short) && i+1 < len(args) {
			return args[i+1], true
		}
		if strings.HasPrefix(arg, long+"=") {
			return strings.TrimPrefix(arg, long+"="), true
		}
	}
	return "", false
}

func adjustSpec(args []string) error {
	path, isProcess := specFile(args)
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	var spec map[string]any
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber() // keep 64-bit limits and IDs exact
	if err := decoder.Decode(&spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	allowed, err := boundingSet()
	if err != nil {
		return err
	}
	minimumOOMScoreAdj, err := ownOOMScoreAdj()
	if err != nil {
		return err
	}
	process := spec
	if !isProcess {
		process, _ = spec["process"].(map[string]any)
	}
	if process == nil || !adjustProcess(process, allowed, minimumOOMScoreAdj) {
		return nil
	}
	adjusted, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, adjusted, 0o600)
}

// adjustProcess reports whether it changed anything.
func adjustProcess(process map[string]any, allowed map[string]bool, minimumOOMScoreAdj int64) bool {
	changed := false
	if capabilities, ok := process["capabilities"].(map[string]any); ok {
		for set, value := range capabilities {
			list, ok := value.([]any)
			if !ok {
				continue
			}
			kept := make([]any, 0, len(list))
			for _, capability := range list {
				if name, ok := capability.(string); ok && !allowed[name] {
					continue
				}
				kept = append(kept, capability)
			}
			if len(kept) != len(list) {
				capabilities[set] = kept
				changed = true
			}
		}
	}
	if value, ok := process["oomScoreAdj"].(json.Number); ok {
		if adj, err := value.Int64(); err == nil && adj < minimumOOMScoreAdj {
			process["oomScoreAdj"] = json.Number(strconv.FormatInt(minimumOOMScoreAdj, 10))
			changed = true
		}
	}
	return changed
}

func boundingSet() (map[string]bool, error) {
	file, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		if hex, ok := strings.CutPrefix(scanner.Text(), "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return nil, err
			}
			allowed := map[string]bool{}
			for bit, name := range capabilityNames {
				if mask>>bit&1 == 1 {
					allowed["CAP_"+name] = true
				}
			}
			return allowed, nil
		}
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}

func ownOOMScoreAdj() (int64, error) {
	raw, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
}
