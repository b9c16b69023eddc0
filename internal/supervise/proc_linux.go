package supervise

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procPath is a process's directory under /proc; pid 0 is this process.
func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// ReadMemory returns a process's resident set (VmRSS) and its peak (VmHWM)
// in KiB, from /proc/<pid>/status; pid 0 is this process. Linux only.
func ReadMemory(pid int) (rss, peak int64, err error) {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("supervise: read memory of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("supervise: %s of %d: %q", k, pid, v)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			peak = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("supervise: no VmRSS for %d", pid)
	}
	return rss, peak, sc.Err()
}

// CPUTime returns the CPU time (user and system) a process has used, from
// /proc/<pid>/stat; pid 0 is this process, read with getrusage. Linux
// only.
func CPUTime(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, fmt.Errorf("supervise: getrusage: %w", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, fmt.Errorf("supervise: read CPU time of %d: %w", pid, err)
	}
	return parseStatCPU(pid, string(b))
}

// parseStatCPU reads utime and stime from the text of /proc/<pid>/stat.
func parseStatCPU(pid int, s string) (time.Duration, error) {
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("supervise: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("supervise: malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("supervise: malformed /proc/%d/stat", pid)
	}
	// Clock ticks: USER_HZ is 100 on every Linux Go supports.
	return time.Duration(ut+st) * (time.Second / 100), nil
}
