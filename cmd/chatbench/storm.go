package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StormResult is what a reconnect storm (-restart-cmd) measured. Times are
// milliseconds from the end of the restart command, when the new server is
// starting (or already listening).
type StormResult struct {
	RestartMS     float64  `json:"restart_ms"`      // how long the restart command took
	NewServerPID  int      `json:"new_server_pid"`  // from the command's last output line; 0 if none
	Clients       int      `json:"clients"`         // connections that were open before the restart
	Reconnected   int      `json:"reconnected"`     // of which reconnected
	Failed        int      `json:"failed"`          // gave up after ReconnectTimeout
	Retries       uint64   `json:"retries"`         // dials refused or failed before one succeeded
	FirstMS       float64  `json:"first_ms"`        // first connection accepted
	SendersLiveMS float64  `json:"senders_live_ms"` // every sender back (they send again from here)
	AllLiveMS     float64  `json:"all_live_ms"`     // every client back: joined, with what it missed queued first
	ConnectP50    float64  `json:"connect_p50_ms"`  // one successful dial (the handshake)
	ConnectP99    float64  `json:"connect_p99_ms"`
	ServerCPU     float64  `json:"server_cpu_pct"` // new server process, from the restart to all live
	BenchCPU      float64  `json:"bench_cpu_pct"`
	MachineCPU    float64  `json:"machine_cpu_pct"`
	Sent          uint64   `json:"sent"` // messages sent after the restart
	Errors        []string `json:"errors,omitempty"`
}

// restartCommand returns a Config.Restart that runs cmd with sh -c and
// waits for it. The command must stop the server, start it again (in the
// background) and may print the new server's PID as its last line of
// output; its other output goes to logw.
func restartCommand(cmd string, logw io.Writer) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		var out bytes.Buffer
		c.Stdout = &out
		c.Stderr = logw
		if err := c.Run(); err != nil {
			return 0, fmt.Errorf("chatbench: -restart-cmd: %w", err)
		}
		pid := 0
		sc := bufio.NewScanner(&out)
		var last string
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			if last != "" {
				fmt.Fprintln(logw, last)
			}
			last = line
		}
		if n, err := strconv.Atoi(last); err == nil && n > 0 {
			pid = n
		} else if last != "" {
			fmt.Fprintln(logw, last)
		}
		return pid, nil
	}
}

// storm restarts the server and reconnects every client that was connected
// with ?after=<the last room seq it has>: senders first, and each sender
// sends again for cfg.ResumeSend as soon as all senders are back, while
// the other clients are still reconnecting; those must then get what they
// missed by resuming. It returns the new server PID (0 if unknown).
func storm(ctx context.Context, cfg Config, clients []*client, loops []*epollLoop, urlFor func(*client) string, logw io.Writer, res *Result) (int, func()) {
	sr := &StormResult{}
	res.Storm = sr
	var was []*client
	for _, c := range clients {
		if c.conn != nil {
			was = append(was, c)
		}
	}
	sr.Clients = len(was)

	t0 := time.Now()
	pid, err := cfg.Restart(ctx)
	start := time.Now()
	sr.RestartMS = ms(start.Sub(t0).Nanoseconds())
	sr.NewServerPID = pid
	if err != nil {
		sr.Errors = append(sr.Errors, err.Error())
		return 0, func() {}
	}
	var srvA procSample
	if pid > 0 {
		srvA, _ = sampleProc(pid)
	}
	benchA, machA := selfCPU(), sampleMachine()

	// The old connections end when the server goes; give them a moment,
	// then cut what is left. Nothing reads a client between its end and
	// its next dial, so its connection state can be reset.
	wait := time.After(5 * time.Second)
	for _, c := range was {
		select {
		case <-c.done:
		case <-wait:
		}
	}
	for _, c := range was {
		select {
		case <-c.done:
		default:
			c.quit.Store(true)
			c.conn.Cut()
			<-c.done
		}
		c.after = -1
		if c.lastSeq > 0 {
			c.after = c.lastSeq // resume after the last seq it has
		} // else no seqs (HISTORY=off): a plain reconnect, nothing to resume
		c.conn = nil
		c.up.Store(false)
		c.done = make(chan struct{})
		c.once = new(sync.Once)
		c.quit.Store(false)
		c.closeE = atomic.Value{}
		for c.slots != nil && len(c.slots) > 0 {
			<-c.slots // answers lost with the old connection
		}
	}

	// Dial: senders first, each retried until it succeeds or the storm
	// times out.
	var senders, rest []*client
	for _, c := range was {
		if c.local < cfg.Senders {
			senders = append(senders, c)
		} else {
			rest = append(rest, c)
		}
	}
	header := http.Header{}
	if cfg.Origin != "" {
		header.Set("Origin", cfg.Origin)
	}
	header.Set("Sec-WebSocket-Protocol", "chatd.v1")
	deadline := start.Add(cfg.ReconnectTimeout)
	var (
		mu       sync.Mutex
		connHist = newHist()
		first    time.Duration
		errs     = map[string]bool{}
		retries  atomic.Uint64
	)
	dialAll := func(list []*client) {
		jobs := make(chan *client)
		var wg sync.WaitGroup
		for range min(cfg.ConnectWorkers, len(list)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range jobs {
					backoff := 20 * time.Millisecond
					for {
						t := time.Now()
						err := dial(ctx, cfg, c, urlFor(c), clientHeader(cfg, header, c), loops)
						if err == nil {
							now := time.Now()
							c.up.Store(true)
							mu.Lock()
							connHist.record(now.Sub(t).Nanoseconds())
							if first == 0 {
								first = now.Sub(start)
							}
							mu.Unlock()
							break
						}
						retries.Add(1)
						if ctx.Err() != nil || time.Now().After(deadline) {
							mu.Lock()
							sr.Failed++
							if len(errs) < 5 {
								errs[err.Error()] = true
							}
							mu.Unlock()
							c.conn = nil
							c.finish()
							break
						}
						sleepCtx(ctx, backoff)
						backoff = min(2*backoff, 250*time.Millisecond)
					}
				}
			}()
		}
		for _, c := range list {
			jobs <- c
		}
		close(jobs)
		wg.Wait()
	}
	dialAll(senders)
	sr.SendersLiveMS = ms(time.Since(start).Nanoseconds())

	// The senders send again while the others reconnect.
	sendCtx, cancelSend := context.WithCancel(ctx)
	var sendWG sync.WaitGroup
	sentBefore := uint64(0)
	for _, c := range clients {
		sentBefore += c.sent.Load()
	}
	if cfg.ResumeSend > 0 {
		sendStart := time.Now()
		end := sendStart.Add(cfg.ResumeSend)
		for k, c := range senders {
			if c.conn == nil {
				continue
			}
			phase := time.Duration(float64(pacerTick(cfg)) * float64(k) / float64(len(senders)))
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				c.sendLoop(sendCtx, cfg, sendStart.Add(phase), end)
			}()
		}
	}
	dialAll(rest)
	live := time.Now()
	sr.AllLiveMS = ms(live.Sub(start).Nanoseconds())
	sr.FirstMS = ms(first.Nanoseconds())
	sr.Reconnected = sr.Clients - sr.Failed
	sr.Retries = retries.Load() - uint64(sr.Failed)
	sr.ConnectP50 = ms(connHist.quantile(0.50))
	sr.ConnectP99 = ms(connHist.quantile(0.99))
	sr.BenchCPU = round2(cpuPercent(selfCPU()-benchA, live.Sub(start)))
	sr.MachineCPU, _ = machineUsage(machA, sampleMachine(), res.CPUs)
	sr.MachineCPU = round2(sr.MachineCPU)
	if pid > 0 && srvA.ok {
		if b, err := sampleProc(pid); err == nil && b.ok {
			sr.ServerCPU = round2(cpuPercent(b.cpu-srvA.cpu, b.at.Sub(srvA.at)))
		}
	}
	for e := range errs {
		sr.Errors = append(sr.Errors, e)
	}
	return pid, func() {
		sendWG.Wait()
		cancelSend()
		var sent uint64
		for _, c := range clients {
			sent += c.sent.Load()
		}
		sr.Sent = sent - sentBefore
	}
}
