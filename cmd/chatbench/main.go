// Command chatbench is a load generator for chat servers that speak the
// Django Channels tutorial protocol: clients connect to ws://HOST/ws/chat/ROOM/,
// send {"message": "..."} and receive every message of their room.
//
// It opens -clients connections spread over -rooms rooms; the first -senders
// clients of each room send -rate messages a second for -duration after a
// -warmup. Every message carries the run id, room, sender, sequence number
// and send time, so each receiver measures latency and detects lost,
// duplicated, reordered and misrouted messages. In -idle mode it only
// connects and holds the connections, to measure the server's memory per
// connection and the connect rate. See docs/chatbench.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const usageHead = `chatbench: load generator for chat servers speaking the Django Channels
tutorial protocol (ws://HOST/ws/chat/ROOM/, frames {"message": "..."}).

Usage: chatbench [flags]

Examples:
  # fan-out: 1 room, 1,000 clients, one sender at 1,000 msg/s (1M deliveries/s)
  chatbench -rooms 1 -clients 1000 -senders 1 -rate 1000 -duration 10s -pid $(pgrep -x chatd)
  # chatty room: 100 clients all sending 10 msg/s each
  chatbench -rooms 1 -clients 100 -senders 100 -rate 10
  # many rooms: 100 rooms x 20 clients, 2 senders each
  chatbench -rooms 100 -clients 2000 -senders 2 -rate 40
  # idle: hold 15,000 connections for 20 s, report server RSS per connection
  chatbench -idle -clients 15000 -duration 20s -pid 1234
  # the Django Channels tutorial server on port 8001, JSON result line
  chatbench -url ws://127.0.0.1:8001 -clients 50 -rate 20 -json

The target must be a loopback address unless -allow-remote is given.
The soft file-descriptor limit is raised to the hard limit at start.

Flags:
`

// run parses args, runs the benchmark and prints the result: a human
// summary on stdout, or with -json the summary on stderr and one JSON line
// on stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	var asJSON, quiet bool
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URL, "url", cfg.URL, "server base `URL` (ws:// or wss://), e.g. ws://127.0.0.1:8001; several comma-separated servers (chatd processes on one Redis) share the clients round robin")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "WebSocket path `template`; %s is replaced by the room name, e.g. /ws/chat/%s/")
	fs.StringVar(&cfg.RoomPrefix, "room-prefix", "", "room names are `PREFIX`0, PREFIX1, ...; default cb<run-id>r, fresh rooms every run (no history)")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "number of rooms, e.g. -rooms 100")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "connections in total, spread evenly over the rooms (client i joins room i%rooms), e.g. -clients 2000")
	fs.IntVar(&cfg.Senders, "senders", cfg.Senders, "senders per room (the first clients of each room; they receive too), e.g. -senders 2")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages per second per sender, e.g. -rate 1000")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "message text size in `bytes` (header padded with x), e.g. -size 200")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured sending time, or holding time with -idle, e.g. -duration 30s")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "sending time before the measurement starts (counted for loss, not for latency or rate), e.g. -warmup 2s")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause between the last connection and the first message, for servers that join the room only after answering the handshake (chatd before 9adf9ac did); -settle 0 tests that a server does not, e.g. -settle 0")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "smallest pacer interval; a faster sender writes several messages per tick, e.g. -tick 1ms")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", 0, "new connections per second; 0 = as fast as -connect-workers allow, e.g. -connect-rate 2000")
	fs.IntVar(&cfg.ConnectWorkers, "connect-workers", cfg.ConnectWorkers, "connections dialled in parallel, e.g. -connect-workers 16")
	fs.StringVar(&cfg.Origin, "origin", "", "Origin header of the upgrade request; empty = none, e.g. -origin http://127.0.0.1:8000")
	fs.BoolVar(&cfg.Idle, "idle", false, "only connect and hold the connections for -duration; report connect stats and server RSS per connection, e.g. -idle -clients 15000")
	fs.IntVar(&cfg.PID, "pid", 0, "server `PID`: report its RSS (VmRSS, VmHWM) and CPU % from /proc, e.g. -pid $(pgrep -x chatd)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON result line on stdout (the summary goes to stderr), e.g. -json | jq .lat_p99_ms")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow targets that are not loopback (127.0.0.0/8, ::1, localhost); only for servers you own")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait after sending for in-flight messages (drain phase), e.g. -timeout 10s")
	fs.StringVar(&cfg.Echo, "echo", cfg.Echo, "does the server send a message back to its sender: auto (yes if any sender got one of its own), true, false")
	fs.IntVar(&cfg.ReadBuffer, "read-buffer", cfg.ReadBuffer, "read buffer `bytes` per connection with -client gws (x4 per read loop with epoll); larger means fewer read syscalls under load, e.g. -read-buffer 65536")
	fs.StringVar(&cfg.Client, "client", cfg.Client, "WebSocket client: epoll (chatbench's own, reads all sockets from -readers epoll loops; Linux, ws:// only) or gws (github.com/lxzan/gws, a goroutine per connection)")
	fs.IntVar(&cfg.Readers, "readers", cfg.Readers, "epoll read loops (goroutines) with -client epoll, e.g. -readers 2")
	fs.BoolVar(&quiet, "q", false, "no progress line on stderr, e.g. -q -json > result.json")
	cpuProfile := fs.String("cpuprofile", "", "write chatbench's own CPU profile to `file`, e.g. -cpuprofile /tmp/bench.pprof")
	roomNames := fs.String("room-names", "", "comma-separated room `names` used as they are (sets -rooms), e.g. course ids: -path /ws/chat/room/%s/ -room-names 1")
	cookies := fs.String("cookies", "", "`file` of Cookie header values, one per line (e.g. chatd_session=...), used round robin: client i sends line i mod n")
	fs.BoolVar(&cfg.V1, "v1", false, "ask for chatd's chatd.v1 subprotocol (hello and ack frames); implied by -ack and -restart-cmd")
	fs.BoolVar(&cfg.Ack, "ack", false, "senders give each message an id; chatd acks it once stored, and chatbench reports acks/s and send-to-ack latency")
	fs.IntVar(&cfg.Window, "window", 0, "with -ack: at most `N` unacknowledged messages per sender (-window 1: send, wait for the ack, send); with -rate 0 as fast as the acks allow")
	restartCmd := fs.String("restart-cmd", "", "reconnect storm: after the drain run this shell `command`, which must restart the server (and may print its new PID as its last line); every client then resumes with ?after=<its last seq>, senders first, and the senders send again for -resume-send while the rest reconnect")
	fs.DurationVar(&cfg.ResumeSend, "resume-send", cfg.ResumeSend, "with -restart-cmd: how long the senders send after they are back, e.g. -resume-send 5s")
	fs.DurationVar(&cfg.ReconnectTimeout, "reconnect-timeout", cfg.ReconnectTimeout, "with -restart-cmd: how long clients keep retrying to reconnect")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("chatbench: unexpected argument %q", fs.Arg(0))
	}
	cfg.Progress = !quiet
	if *roomNames != "" {
		for n := range strings.SplitSeq(*roomNames, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cfg.RoomNames = append(cfg.RoomNames, n)
			}
		}
	}
	if *cookies != "" {
		list, err := readCookies(*cookies)
		if err != nil {
			return err
		}
		cfg.Cookies = list
	}
	if *restartCmd != "" {
		cfg.Restart = restartCommand(*restartCmd, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("chatbench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("chatbench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	res, err := Run(ctx, cfg, stderr)
	if res != nil {
		summary := stdout
		if asJSON {
			summary = stderr
		}
		printSummary(summary, cfg, res)
		if asJSON {
			b, _ := json.Marshal(res)
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}
	return err
}

// printSummary writes the human-readable result.
func printSummary(w io.Writer, cfg Config, r *Result) {
	fmt.Fprintf(w, "chatbench run %s -> %s\n", r.RunID, r.Target)
	if r.Idle {
		fmt.Fprintf(w, "  workload     idle: %d clients in %d rooms held %gs\n", r.Clients, r.Rooms, r.DurationS)
	} else {
		fmt.Fprintf(w, "  workload     %d rooms, %d clients, %d senders/room at %g msg/s, %d B, %gs (+%gs warmup), echo %v\n",
			r.Rooms, r.Clients, r.SendersPerRoom, r.Rate, r.Size, r.DurationS, r.WarmupS, r.Echo)
	}
	fmt.Fprintf(w, "  connections  ok %d  failed %d  dropped %d  connect p50 %.2fms p99 %.2fms max %.2fms  rate %.0f/s (cpu: server %.0f%%, chatbench %.0f%%)\n",
		r.ConnsOK, r.ConnsFailed, r.ConnsDropped, r.ConnectP50, r.ConnectP99, r.ConnectMax, r.ConnectRate, r.ConnectServerCPU, r.ConnectBenchCPU)
	for _, e := range r.ConnectErrors {
		fmt.Fprintf(w, "               connect error: %s\n", e)
	}
	for _, e := range r.DropReasons {
		fmt.Fprintf(w, "               dropped: %s\n", e)
	}
	if !r.Idle {
		fmt.Fprintf(w, "  messages     sent %d  expected %d  received %d  lost %d  dup %d  out-of-order %d  wrong-room %d  (send errors %d, other runs %d, other frames %d)\n",
			r.Sent, r.Expected, r.Received, r.Lost, r.Duplicates, r.OutOfOrder, r.WrongRoom, r.SendErrors, r.Foreign, r.OtherFrames)
		if r.ErrorFrames > 0 {
			fmt.Fprintf(w, "               server error frames %d, first: %s\n", r.ErrorFrames, r.FirstError)
		}
		for _, l := range r.LostSamples {
			fmt.Fprintf(w, "               lost: %s\n", l)
		}
		fmt.Fprintf(w, "  throughput   delivered %.0f/s  (offered %.0f/s)\n", r.DeliveredPerS, r.OfferedPerS)
		fmt.Fprintf(w, "  latency      p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  mean %.3fms  (%d samples)\n",
			r.LatP50, r.LatP90, r.LatP99, r.LatP999, r.LatMax, r.LatMean, r.LatN)
		if cfg.Ack {
			fmt.Fprintf(w, "  acks         acked %d  refused %d  unanswered %d  dup %d  acked %.0f/s  ack p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  (%d samples)\n",
				r.Acked, r.Nacked, r.Unacked, r.AckDups, r.AckedPerS, r.AckP50, r.AckP90, r.AckP99, r.AckP999, r.AckMax, r.AckN)
		}
	}
	if r.SeqFrames > 0 {
		fmt.Fprintf(w, "  room seqs    %d frames with a seq (history on): gaps %d  duplicates %d  (frames %d in all)\n", r.SeqFrames, r.SeqGaps, r.SeqDups, r.Frames)
	} else if r.Idle {
		fmt.Fprintf(w, "  frames       %d received (history on join, hello)\n", r.Frames)
	}
	if s := r.Storm; s != nil {
		fmt.Fprintf(w, "  storm        restart %.0fms (new pid %d); %d of %d reconnected with ?after=, %d failed, %d retries; first %.0fms, senders %.0fms, all live %.0fms after the restart; dial p50 %.1fms p99 %.1fms; %d messages sent after the restart\n",
			s.RestartMS, s.NewServerPID, s.Reconnected, s.Clients, s.Failed, s.Retries, s.FirstMS, s.SendersLiveMS, s.AllLiveMS, s.ConnectP50, s.ConnectP99, s.Sent)
		fmt.Fprintf(w, "               cpu until all live: server %.0f%%, chatbench %.0f%%, machine %.0f%%\n", s.ServerCPU, s.BenchCPU, s.MachineCPU)
		for _, e := range s.Errors {
			fmt.Fprintf(w, "               error: %s\n", e)
		}
	}
	if r.ServerPID > 0 {
		fmt.Fprintf(w, "  server       pid %d  cpu %.1f%%  rss %s (start %s, peak %s)",
			r.ServerPID, r.ServerCPU, kib(r.ServerRSSEnd), kib(r.ServerRSSStart), kib(r.ServerRSSPeak))
		if r.Idle {
			fmt.Fprintf(w, "  %.2f KiB/conn", r.ServerRSSPerConn)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  chatbench    cpu %.1f%% of one core (%d cores on this machine; fd limit %d)\n", r.BenchCPU, r.CPUs, r.FDLimit)
	fmt.Fprintf(w, "  machine      busy %.1f%% of %d%% (all processes and the kernel; other processes %.1f%%; softirq %.1f%%, mostly loopback TCP)\n", r.MachineCPU, 100*r.CPUs, r.OtherCPU, r.SoftIRQ)
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", s)
	}
}

// readCookies reads a -cookies file: one Cookie header value per line;
// empty lines and lines starting with # are skipped.
func readCookies(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chatbench: -cookies: %w", err)
	}
	var list []string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		list = append(list, line)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("chatbench: -cookies %s has no cookie", path)
	}
	return list, nil
}

func kib(k int64) string {
	if k >= 1024 {
		return fmt.Sprintf("%.1f MiB", float64(k)/1024)
	}
	return fmt.Sprintf("%d KiB", k)
}
