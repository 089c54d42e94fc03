package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (the kernel fixes it for
// user space), so no sysconf(_SC_CLK_TCK) call is needed.
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	at     time.Time
	cpu    time.Duration // user + system
	rssKiB int64         // VmRSS
	hwmKiB int64         // VmHWM: peak RSS
	ok     bool
}

// sampleProc reads /proc/PID/stat and /proc/PID/status.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces, so
	// split after the last ')'. utime and stime are fields 14 and 15, which
	// are the 12th and 13th after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("chatbench: cannot parse /proc/%d/stat", pid)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("chatbench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("chatbench: cannot parse cpu times in /proc/%d/stat", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.rssKiB = statusKiB(status, "VmRSS:")
	s.hwmKiB = statusKiB(status, "VmHWM:")
	s.ok = true
	return s, nil
}

// statusKiB returns the value in kB of a "Key:   123 kB" line, or 0.
func statusKiB(status []byte, key string) int64 {
	i := bytes.Index(status, []byte(key))
	if i < 0 {
		return 0
	}
	line := status[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return v
}

// selfCPU returns the user+system CPU time this process has used so far.
// getrusage is more precise than the 10 ms ticks of /proc/self/stat.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPercent is the CPU used between two samples as a percentage of one
// core (so 200 % means two cores fully busy).
func cpuPercent(cpu time.Duration, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall)
}

// raiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// the old and new soft limits. Each WebSocket connection holds one file
// descriptor, and the soft limit (often 1024) is far below what a benchmark
// with thousands of clients needs.
func raiseFDLimit() (before, after uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	before = rl.Cur
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return before, before, err
		}
	}
	return before, rl.Cur, nil
}

// machineSample is the first line of /proc/stat: CPU time of all cores, in
// clock ticks, by kind.
type machineSample struct {
	user, nice, system, idle, iowait, irq, softirq, steal uint64
	ok                                                    bool
}

func (m machineSample) total() uint64 {
	return m.user + m.nice + m.system + m.idle + m.iowait + m.irq + m.softirq + m.steal
}

// sampleMachine reads /proc/stat. Loopback TCP is processed largely in
// softirq context and other processes share the cores, so the server's and
// chatbench's CPU alone do not tell whether the machine was saturated.
func sampleMachine() machineSample {
	var m machineSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	f := bytes.Fields(b)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return m
	}
	v := make([]uint64, 8)
	for i := range v {
		v[i], _ = strconv.ParseUint(string(f[i+1]), 10, 64)
	}
	m = machineSample{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], true}
	return m
}

// machineUsage returns, in percent of one core (200 % = two cores busy),
// the busy time and the softirq time between a and b.
func machineUsage(a, b machineSample, cpus int) (busy, softirq float64) {
	if !a.ok || !b.ok {
		return 0, 0
	}
	total := float64(b.total() - a.total())
	if total <= 0 {
		return 0, 0
	}
	scale := 100 * float64(cpus) / total
	idle := float64((b.idle + b.iowait) - (a.idle + a.iowait))
	return (total - idle) * scale, float64(b.softirq-a.softirq) * scale
}

// otherCPU returns the CPU time of every process except chatbench and the
// server, by PID, from /proc/PID/stat. Two samples tell how much the rest of
// the machine competed for the cores during a run. It is a lower bound:
// processes that started and ended between the samples are missed
// (children's time is not used, since a parent collects it only when it
// reaps the child, all at once).
func otherCPU(server int) map[int]time.Duration {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	m := make(map[int]time.Duration, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == server {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 15 {
			continue
		}
		var ticks int64
		for _, k := range []int{11, 12} { // utime stime
			v, _ := strconv.ParseInt(string(f[k]), 10, 64)
			ticks += v
		}
		m[pid] = time.Duration(ticks) * time.Second / clockTicks
	}
	return m
}

// otherCPUDelta is the CPU the other processes used between two samples.
func otherCPUDelta(a, b map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range b {
		d += t - a[pid] // a new process counts whole
	}
	return max(d, 0)
}
