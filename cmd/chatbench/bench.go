package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// Config is one benchmark run.
type Config struct {
	URL            string        // base URL, ws://host:port
	Path           string        // path template with one %s for the room name
	RoomPrefix     string        // room names are RoomPrefix+index; empty: "cb<run>r"
	Rooms          int           // number of rooms
	Clients        int           // connections, spread evenly over the rooms
	Senders        int           // senders per room (the first clients of each room)
	Rate           float64       // messages per second per sender
	Size           int           // message text bytes (padded)
	Duration       time.Duration // measured sending time, or holding time in idle mode
	Warmup         time.Duration // sending time before measuring
	Settle         time.Duration // pause between connecting and sending
	Tick           time.Duration // smallest pacer interval of a sender
	ConnectRate    float64       // new connections per second; 0: as fast as ConnectWorkers allow
	ConnectWorkers int           // connections dialled in parallel
	Origin         string        // Origin header; empty: none
	Idle           bool          // only connect and hold
	PID            int           // server PID for RSS and CPU; 0: none
	AllowRemote    bool          // allow targets that are not loopback
	Timeout        time.Duration // longest drain wait for in-flight messages
	Echo           string        // auto, true or false: does the server echo to the sender
	Progress       bool          // progress line every second
	ReadBuffer     int           // read buffer bytes per connection (gws) or per read loop (epoll)
	Client         string        // epoll (own client, reads via epoll) or gws
	Readers        int           // epoll read loops

	RoomNames []string // explicit room names (e.g. course ids for /ws/chat/room/%s/); overrides RoomPrefix and Rooms
	Cookies   []string // Cookie header values, client i uses Cookies[i%len]; empty: none
	V1        bool     // ask for the chatd.v1 subprotocol (hello, acks)
	Ack       bool     // senders give each message an id and measure chatd's ack (implies V1)
	Window    int      // most unacknowledged messages per sender (with Ack); 0: no limit

	// Restart, if not nil, makes a reconnect storm after the drain: it
	// restarts the server (returning its new PID, or 0 if unknown); every
	// client then reconnects with ?after=<last seq it has>, senders first,
	// and the senders send again for ResumeSend as soon as they are back,
	// so clients that come back later must get those messages by resuming.
	Restart    func(ctx context.Context) (pid int, err error)
	ResumeSend time.Duration // sending time after the restart
	// ReconnectTimeout bounds the storm: a client that cannot reconnect
	// within it (retrying every 20-250 ms) counts as failed.
	ReconnectTimeout time.Duration
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{
		URL:            "ws://127.0.0.1:8000",
		Path:           "/ws/chat/%s/",
		Rooms:          1,
		Clients:        100,
		Senders:        1,
		Rate:           10,
		Size:           100,
		Duration:       10 * time.Second,
		Warmup:         time.Second,
		Settle:         250 * time.Millisecond,
		Tick:           5 * time.Millisecond,
		ConnectWorkers: 64,
		Timeout:        5 * time.Second,
		Echo:           "auto",
		Progress:       true,
		ReadBuffer:     16 << 10,
		Client:         defaultClient(),
		Readers:        max(1, runtime.GOMAXPROCS(0)/2),

		ResumeSend:       2 * time.Second,
		ReconnectTimeout: 30 * time.Second,
	}
}

// Result is what a run measured. Durations are in milliseconds, rates per
// second, memory in KiB and CPU in percent of one core.
type Result struct {
	RunID  string `json:"run_id"`
	Target string `json:"target"`
	Idle   bool   `json:"idle"`

	Rooms          int     `json:"rooms"`
	Clients        int     `json:"clients"`
	SendersPerRoom int     `json:"senders_per_room"`
	Rate           float64 `json:"rate_per_sender"`
	Size           int     `json:"size"`
	DurationS      float64 `json:"duration_s"`
	WarmupS        float64 `json:"warmup_s"`

	ConnsOK          int      `json:"conns_ok"`
	ConnsFailed      int      `json:"conns_failed"`
	ConnsDropped     int      `json:"conns_dropped"` // closed by the server or the network during the run
	ConnectP50       float64  `json:"connect_p50_ms"`
	ConnectP99       float64  `json:"connect_p99_ms"`
	ConnectMax       float64  `json:"connect_max_ms"`
	ConnectRate      float64  `json:"connect_rate"`
	ConnectServerCPU float64  `json:"connect_server_cpu_pct"` // while connecting
	ConnectBenchCPU  float64  `json:"connect_bench_cpu_pct"`
	ConnectErrors    []string `json:"connect_errors,omitempty"` // a few distinct ones
	DropReasons      []string `json:"drop_reasons,omitempty"`

	Echo          bool     `json:"echo"`
	Sent          uint64   `json:"sent"`
	SendErrors    uint64   `json:"send_errors"`
	SenderBacklog uint64   `json:"sender_backlog_max"` // most messages one sender was behind schedule
	Expected      uint64   `json:"expected"`
	Received      uint64   `json:"received"`
	Lost          uint64   `json:"lost"`
	Duplicates    uint64   `json:"duplicates"`
	OutOfOrder    uint64   `json:"out_of_order"`
	WrongRoom     uint64   `json:"wrong_room"`
	LostSamples   []string `json:"lost_samples,omitempty"` // a few missing deliveries: receiver, room, sender, seq
	Foreign       uint64   `json:"foreign"`                // chatbench messages of other runs
	OtherFrames   uint64   `json:"other_frames"`           // frames that are not chatbench messages
	ErrorFrames   uint64   `json:"error_frames"`           // of which {"type":"error"} frames
	FirstError    string   `json:"first_error,omitempty"`
	OfferedPerS   float64  `json:"offered_per_s"`
	DeliveredPerS float64  `json:"delivered_per_s"`
	Frames        uint64   `json:"frames"` // every frame received (history on join included)

	// Room seqs (chatd with history on): every client must see each seq
	// of its room once, in order, across reconnects.
	SeqFrames uint64 `json:"seq_frames"`
	SeqGaps   uint64 `json:"seq_gaps"` // seqs a client never got
	SeqDups   uint64 `json:"seq_dups"` // seqs a client got again (or out of order)

	// Acks (-ack).
	Acked     uint64  `json:"acked,omitempty"`
	Nacked    uint64  `json:"nacked,omitempty"`     // error frames naming a message's id
	Unacked   uint64  `json:"unacked,omitempty"`    // neither acked nor refused when the drain ended
	AckDups   uint64  `json:"ack_dups,omitempty"`   // an id acked twice
	AckedPerS float64 `json:"acked_per_s"`          // acks of messages sent in the measured window, per second of it
	AckP50    float64 `json:"ack_p50_ms,omitempty"` // send to ack
	AckP90    float64 `json:"ack_p90_ms,omitempty"`
	AckP99    float64 `json:"ack_p99_ms,omitempty"`
	AckP999   float64 `json:"ack_p999_ms,omitempty"`
	AckMax    float64 `json:"ack_max_ms,omitempty"`
	AckN      uint64  `json:"ack_samples,omitempty"`

	// Reconnect storm (-restart-cmd). Times are from the end of the
	// restart command.
	Storm *StormResult `json:"storm,omitempty"`

	LatP50  float64 `json:"lat_p50_ms"`
	LatP90  float64 `json:"lat_p90_ms"`
	LatP99  float64 `json:"lat_p99_ms"`
	LatP999 float64 `json:"lat_p999_ms"`
	LatMax  float64 `json:"lat_max_ms"`
	LatMean float64 `json:"lat_mean_ms"`
	LatN    uint64  `json:"lat_samples"`

	ServerPID        int     `json:"server_pid,omitempty"`
	ServerCPU        float64 `json:"server_cpu_pct"`
	ServerRSSStart   int64   `json:"server_rss_start_kib"`
	ServerRSSEnd     int64   `json:"server_rss_end_kib"`
	ServerRSSPeak    int64   `json:"server_rss_peak_kib"`
	ServerRSSPerConn float64 `json:"server_rss_per_conn_kib,omitempty"`

	BenchCPU   float64  `json:"bench_cpu_pct"`
	MachineCPU float64  `json:"machine_cpu_pct"` // all processes and the kernel, from /proc/stat
	OtherCPU   float64  `json:"other_cpu_pct"`   // other processes during the run: noise
	SoftIRQ    float64  `json:"softirq_cpu_pct"` // part of MachineCPU spent in softirq (loopback TCP); partly also in the processes' system time
	CPUs       int      `json:"cpus"`
	FDLimit    uint64   `json:"fd_limit"`
	Warnings   []string `json:"warnings,omitempty"`
}

// checkTarget refuses targets that are not loopback unless allowRemote.
func checkTarget(base string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("chatbench: bad -url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("chatbench: -url %q: scheme must be ws or wss", base)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("chatbench: -url %q has no host", base)
	}
	if allowRemote {
		return u, nil
	}
	if strings.EqualFold(host, "localhost") {
		return u, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return u, nil
	}
	return nil, fmt.Errorf("chatbench: refusing non-loopback target %q (only 127.0.0.0/8, ::1 and localhost; pass -allow-remote to load a server you own)", host)
}

func (cfg *Config) validate() error {
	if len(cfg.RoomNames) > 0 {
		cfg.Rooms = len(cfg.RoomNames)
	}
	if cfg.Ack || cfg.Restart != nil {
		cfg.V1 = true
	}
	switch {
	case cfg.Window < 0:
		return errors.New("chatbench: -window must not be negative")
	case cfg.Window > 0 && !cfg.Ack:
		return errors.New("chatbench: -window needs -ack (the window counts unacknowledged messages)")
	case !cfg.Idle && cfg.Senders > 0 && cfg.Rate <= 0 && cfg.Window == 0:
		return errors.New("chatbench: -rate must be positive (or 0 with -ack -window N: as fast as the acks allow)")
	case cfg.Rate < 0:
		return errors.New("chatbench: -rate must not be negative")
	case cfg.Restart != nil && cfg.Idle:
		return errors.New("chatbench: -restart-cmd needs messages; it does not go with -idle")
	case cfg.Restart != nil && (cfg.ResumeSend < 0 || cfg.ReconnectTimeout <= 0):
		return errors.New("chatbench: -resume-send must not be negative and -reconnect-timeout must be positive")
	}
	switch {
	case cfg.Rooms < 1:
		return errors.New("chatbench: -rooms must be at least 1")
	case cfg.Clients < cfg.Rooms:
		return errors.New("chatbench: -clients must be at least -rooms")
	case cfg.Senders < 0:
		return errors.New("chatbench: -senders must not be negative")
	case cfg.Duration <= 0:
		return errors.New("chatbench: -duration must be positive")
	case cfg.Warmup < 0 || cfg.Settle < 0 || cfg.Timeout < 0 || cfg.Tick < 0 || cfg.ConnectRate < 0:
		return errors.New("chatbench: durations and rates must not be negative")
	case cfg.Size < 0 || cfg.Size > 1<<20:
		return errors.New("chatbench: -size must be in 0..1048576")
	case strings.Count(cfg.Path, "%s") != 1:
		return errors.New("chatbench: -path must contain exactly one %s")
	}
	switch cfg.Client {
	case "gws":
	case "epoll":
		if !epollAvailable {
			return errors.New("chatbench: -client epoll needs Linux")
		}
	default:
		return errors.New("chatbench: -client must be epoll or gws")
	}
	cfg.Readers = max(cfg.Readers, 1)
	switch cfg.Echo {
	case "auto", "true", "false":
	default:
		return errors.New("chatbench: -echo must be auto, true or false")
	}
	if cfg.ConnectWorkers < 1 {
		cfg.ConnectWorkers = 1
	}
	if cfg.Tick == 0 {
		cfg.Tick = time.Millisecond
	}
	if min := cfg.Clients / cfg.Rooms; cfg.Senders > min {
		return fmt.Errorf("chatbench: -senders %d is more than the %d clients of the smallest room", cfg.Senders, min)
	}
	return nil
}

func defaultClient() string {
	if epollAvailable {
		return "epoll"
	}
	return "gws"
}

var fdOnce sync.Once
var fdLimit uint64

// Run runs one benchmark and returns what it measured. Progress lines go to
// logw (one a second, if cfg.Progress). It stops by itself: connecting is
// bounded by the handshake timeout, sending by Warmup+Duration, the drain by
// Timeout and closing by a fixed grace period. Cancelling ctx ends it early.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// -url may list several servers (comma-separated), e.g. chatd processes
	// sharing one Redis: client i connects to server i mod n, so every room
	// is spread over all of them.
	var bases []*url.URL
	for raw := range strings.SplitSeq(cfg.URL, ",") {
		b, err := checkTarget(strings.TrimSpace(raw), cfg.AllowRemote)
		if err != nil {
			return nil, err
		}
		bases = append(bases, b)
	}
	base := bases[0]
	var err error
	if base.Scheme == "wss" && cfg.Client == "epoll" {
		return nil, errors.New("chatbench: -client epoll speaks ws:// only; use -client gws for wss://")
	}
	fdOnce.Do(func() {
		before, after, err := raiseFDLimit()
		fdLimit = after
		if err != nil {
			fmt.Fprintf(logw, "chatbench: cannot raise the fd limit (%d): %v\n", before, err)
		} else if after != before {
			fmt.Fprintf(logw, "chatbench: raised the fd soft limit from %d to the hard limit %d\n", before, after)
		}
	})
	if need := uint64(cfg.Clients) + 64; fdLimit > 0 && need > fdLimit {
		fmt.Fprintf(logw, "chatbench: warning: %d clients need about %d file descriptors, the limit is %d\n", cfg.Clients, need, fdLimit)
	}

	var rb [4]byte
	_, _ = rand.Read(rb[:])
	runID := hex.EncodeToString(rb[:])
	prefix := cfg.RoomPrefix
	if prefix == "" {
		prefix = "cb" + runID + "r"
	}
	urlFor := func(c *client) string {
		b := bases[c.id%len(bases)]
		name := prefix + fmt.Sprint(c.room)
		if len(cfg.RoomNames) > 0 {
			name = cfg.RoomNames[c.room]
		}
		u := strings.TrimRight(b.String(), "/") + fmt.Sprintf(cfg.Path, name)
		if c.after >= 0 {
			u += "?after=" + fmt.Sprint(c.after)
		}
		return u
	}

	res := &Result{
		RunID: runID, Target: strings.TrimRight(cfg.URL, "/") + cfg.Path, Idle: cfg.Idle,
		Rooms: cfg.Rooms, Clients: cfg.Clients, SendersPerRoom: cfg.Senders, Rate: cfg.Rate,
		Size: cfg.Size, DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
		CPUs: runtime.NumCPU(), FDLimit: fdLimit, ServerPID: cfg.PID,
	}
	if cfg.Idle {
		res.SendersPerRoom, res.Rate, res.WarmupS = 0, 0, 0
	}

	// Clients: client i is in room i%rooms; the first Senders of each room send.
	win := &window{}
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		c := &client{id: i, room: i % cfg.Rooms, local: i / cfg.Rooms, run: runID, win: win, done: make(chan struct{}), once: new(sync.Once), after: -1}
		if !cfg.Idle {
			c.tracks = make([]track, cfg.Senders)
		}
		if cfg.Window > 0 && c.local < cfg.Senders {
			c.slots = make(chan struct{}, cfg.Window)
		}
		clients[i] = c
	}

	var srvStart procSample
	if cfg.PID > 0 {
		if srvStart, err = sampleProc(cfg.PID); err != nil {
			return nil, fmt.Errorf("chatbench: -pid %d: %w", cfg.PID, err)
		}
		res.ServerRSSStart = srvStart.rssKiB
	}

	prog := newProgress(logw, clients, cfg.Progress)
	defer prog.stop()

	// Connect.
	var loops []*epollLoop
	defer func() {
		for _, l := range loops {
			l.shutdown()
		}
	}()
	if cfg.Client == "epoll" {
		for range cfg.Readers {
			l, err := newEpollLoop(len(clients), cfg.ReadBuffer*4)
			if err != nil {
				return nil, err
			}
			loops = append(loops, l)
		}
	}

	prog.setPhase("connect")
	connStart := time.Now()
	connBench := selfCPU()
	connHist, failed, errs := connectAll(ctx, cfg, clients, urlFor, loops)
	connWall := time.Since(connStart)
	res.ConnectBenchCPU = round2(cpuPercent(selfCPU()-connBench, connWall))
	if cfg.PID > 0 {
		if s, err := sampleProc(cfg.PID); err == nil {
			res.ConnectServerCPU = round2(cpuPercent(s.cpu-srvStart.cpu, s.at.Sub(srvStart.at)))
		}
	}
	res.ConnsFailed = failed
	res.ConnsOK = cfg.Clients - failed
	res.ConnectErrors = errs
	res.ConnectP50 = ms(connHist.quantile(0.50))
	res.ConnectP99 = ms(connHist.quantile(0.99))
	res.ConnectMax = ms(int64(connHist.max))
	if connHist.n == 0 {
		res.ConnectMax = 0
	}
	if connWall > 0 {
		res.ConnectRate = float64(res.ConnsOK) / connWall.Seconds()
	}
	defer closeAll(clients, loops)
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The measured window starts now (idle) or after the warmup.
	var (
		benchStart   time.Duration
		machStart    machineSample
		othersStart  map[int]time.Duration
		measureStart time.Time
		srvA         procSample
	)
	startMeasure := func() {
		measureStart = time.Now()
		benchStart = selfCPU()
		machStart = sampleMachine()
		othersStart = otherCPU(cfg.PID)
		if cfg.PID > 0 {
			srvA, _ = sampleProc(cfg.PID)
		}
	}

	if !cfg.Idle && cfg.Settle > 0 {
		// A server may answer 101 before the connection has joined its room
		// (chatd did until 9adf9ac); a message sent at once would then miss
		// the clients that connected last.
		prog.setPhase("settle")
		sleepCtx(ctx, cfg.Settle)
	}
	if cfg.Idle {
		prog.setPhase("hold")
		startMeasure()
		sleepCtx(ctx, cfg.Duration)
	} else {
		runSenders(ctx, cfg, clients, win, prog, startMeasure)
		if now := time.Now().UnixNano(); now < win.to.Load() {
			win.to.Store(now) // cut short: the window ends here
		}
	}
	measureEnd := time.Now()
	benchCPU := selfCPU() - benchStart
	res.MachineCPU, res.SoftIRQ = machineUsage(machStart, sampleMachine(), res.CPUs)
	res.MachineCPU, res.SoftIRQ = round2(res.MachineCPU), round2(res.SoftIRQ)
	res.OtherCPU = round2(cpuPercent(otherCPUDelta(othersStart, otherCPU(cfg.PID)), measureEnd.Sub(measureStart)))
	var srvB procSample
	if cfg.PID > 0 {
		srvB, _ = sampleProc(cfg.PID)
	}

	echo := false
	if !cfg.Idle {
		prog.setPhase("drain")
		echo = drain(ctx, cfg, clients)
	}
	if cfg.Restart != nil && ctx.Err() == nil {
		// No progress line from here on: the storm resets the clients'
		// connection state, which the progress loop reads.
		prog.stop()
		fmt.Fprintf(logw, "chatbench: restarting the server (-restart-cmd); then %d clients resume\n", res.ConnsOK)
		pid, sendersDone := storm(ctx, cfg, clients, loops, urlFor, logw, res)
		sendersDone()
		if pid > 0 {
			cfg.PID, res.ServerPID = pid, pid // memory is read from the new process
		}
		echo = drain(ctx, cfg, clients)
	}

	// Dropped connections: ended before chatbench closed them.
	reasons := map[string]bool{}
	for _, c := range clients {
		if c.conn == nil {
			continue
		}
		select {
		case <-c.done:
			res.ConnsDropped++
			if e := c.closeErr(); e != nil && len(reasons) < 5 {
				reasons[e.Error()] = true
			}
		default:
		}
	}
	for r := range reasons {
		res.DropReasons = append(res.DropReasons, r)
	}

	// Memory is read while every connection is still open.
	if cfg.PID > 0 {
		if end, err := sampleProc(cfg.PID); err == nil {
			res.ServerRSSEnd, res.ServerRSSPeak = end.rssKiB, end.hwmKiB
		}
		if srvA.ok && srvB.ok {
			res.ServerCPU = round2(cpuPercent(srvB.cpu-srvA.cpu, srvB.at.Sub(srvA.at)))
		}
		if cfg.Idle && res.ConnsOK > 0 {
			res.ServerRSSPerConn = round2(float64(res.ServerRSSEnd-res.ServerRSSStart) / float64(res.ConnsOK))
		}
	}
	prog.stop()
	closeAll(clients, loops)

	// Merge the per-connection counts; every read goroutine has ended.
	wall := measureEnd.Sub(measureStart)
	res.BenchCPU = round2(cpuPercent(benchCPU, wall))
	if !cfg.Idle {
		collect(cfg, clients, echo, win, res)
	} else {
		for _, c := range clients {
			res.Frames += c.frames
		}
	}
	res.Warnings = warnings(cfg, res)
	return res, ctx.Err()
}

// connectAll dials every client, ConnectWorkers at a time, at most
// ConnectRate per second, and starts each connection's read goroutine.
func connectAll(ctx context.Context, cfg Config, clients []*client, urlFor func(*client) string, loops []*epollLoop) (*hist, int, []string) {
	var (
		mu     sync.Mutex
		all    = newHist()
		failed int
		errs   = map[string]bool{}
	)
	header := http.Header{}
	if cfg.Origin != "" {
		header.Set("Origin", cfg.Origin)
	}
	if cfg.V1 {
		header.Set("Sec-WebSocket-Protocol", "chatd.v1")
	}
	jobs := make(chan *client)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.ConnectWorkers, len(clients)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHist()
			for c := range jobs {
				t0 := time.Now()
				err := dial(ctx, cfg, c, urlFor(c), clientHeader(cfg, header, c), loops)
				if err != nil {
					mu.Lock()
					failed++
					if len(errs) < 5 {
						errs[err.Error()] = true
					}
					mu.Unlock()
					c.finish()
					continue
				}
				h.record(time.Since(t0).Nanoseconds())
				c.up.Store(true)
			}
			mu.Lock()
			all.merge(h)
			mu.Unlock()
		}()
	}
	start := time.Now()
	for i, c := range clients {
		if cfg.ConnectRate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.ConnectRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				sleepCtx(ctx, d)
			}
		}
		if ctx.Err() != nil {
			// Not dialled: count as failed so the totals add up.
			for _, c := range clients[i:] {
				failed++
				c.finish()
			}
			break
		}
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	var list []string
	for e := range errs {
		list = append(list, e)
	}
	return all, failed, list
}

// clientHeader returns the upgrade request's header for c: the common one,
// with c's cookie if -cookies gave some (used round robin).
func clientHeader(cfg Config, common http.Header, c *client) http.Header {
	if len(cfg.Cookies) == 0 {
		return common
	}
	h := common.Clone()
	h.Set("Cookie", cfg.Cookies[c.id%len(cfg.Cookies)])
	return h
}

// dial connects c with the configured client and starts reading.
func dial(ctx context.Context, cfg Config, c *client, addr string, header http.Header, loops []*epollLoop) error {
	const handshakeTimeout = 10 * time.Second
	if cfg.Client == "gws" {
		conn, resp, err := gws.NewClient(c, &gws.ClientOption{
			Addr:             addr,
			RequestHeader:    header.Clone(),
			HandshakeTimeout: handshakeTimeout,
			ReadBufferSize:   cfg.ReadBuffer,
		})
		if err != nil {
			if resp != nil {
				err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
			}
			return err
		}
		c.conn = gwsConn{conn}
		go func() {
			defer c.finish()
			conn.ReadLoop()
		}()
		return nil
	}
	rc, early, err := dialRaw(ctx, addr, header, handshakeTimeout)
	if err != nil {
		return err
	}
	rc.c = c
	c.conn = rc
	if len(early) > 0 { // frames that came with the handshake response
		k, perr := rc.parse(early, time.Now().UnixNano())
		if perr != nil {
			rc.Abort()
			return perr
		}
		rc.rest = early[k:]
	}
	if err := loops[c.id%len(loops)].add(rc); err != nil {
		rc.Abort()
		return err
	}
	return nil
}

// runSenders warms up, then measures for cfg.Duration. It calls
// startMeasure when the measured window starts.
func runSenders(ctx context.Context, cfg Config, clients []*client, win *window, prog *progress, startMeasure func()) {
	start := time.Now()
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	win.to.Store(to.UnixNano())
	win.from.Store(from.UnixNano())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var senders []*client
	for _, c := range clients {
		if c.local < cfg.Senders && c.conn != nil {
			senders = append(senders, c)
		}
	}
	for k, c := range senders {
		wg.Add(1)
		// Spread the senders' ticks over one interval so they do not all fire
		// at once.
		phase := time.Duration(float64(pacerTick(cfg)) * float64(k) / float64(len(senders)))
		go func() {
			defer wg.Done()
			c.sendLoop(ctx, cfg, start.Add(phase), to)
		}()
	}
	prog.setPhase("warmup")
	if cfg.Warmup > 0 {
		sleepCtx(ctx, time.Until(from))
	}
	prog.setPhase("measure")
	startMeasure()
	wg.Wait()
}

// pacerTick is the interval at which a sender wakes up: one message's time,
// but no less than cfg.Tick, so a fast sender writes several messages per
// tick instead of arming a timer per message.
func pacerTick(cfg Config) time.Duration {
	if cfg.Rate <= 0 {
		return cfg.Tick
	}
	tick := time.Duration(float64(time.Second) / cfg.Rate)
	return max(tick, cfg.Tick)
}

// sendLoop writes messages at cfg.Rate from start until end; with a
// window (-ack -window N) never more than N unacknowledged, and with rate 0
// as fast as the acks allow. Sequence numbers go on from the messages
// already sent, so a sender can send again after a reconnect.
func (c *client) sendLoop(ctx context.Context, cfg Config, start, end time.Time) {
	if !sleepCtx(ctx, time.Until(start)) {
		return
	}
	buf := make([]byte, 0, cfg.Size+192)
	stop := time.NewTimer(time.Until(end))
	defer stop.Stop()
	base := c.sent.Load()
	seq := base
	write := func() bool {
		if !c.acquire(ctx, stop.C) {
			return false
		}
		ns := time.Now().UnixNano()
		if cfg.Ack {
			buf = appendMessageID(buf[:0], c.run, c.room, c.local, seq, ns, cfg.Size)
		} else {
			buf = appendMessage(buf[:0], c.run, c.room, c.local, seq, ns, cfg.Size)
		}
		if err := c.conn.WriteText(buf); err != nil {
			c.sendErrors.Add(1)
			return false
		}
		seq++
		c.sent.Add(1)
		return true
	}
	if cfg.Rate <= 0 { // closed loop: the window is the only limit
		for ctx.Err() == nil && time.Now().Before(end) {
			if !write() {
				return
			}
		}
		return
	}
	tick := time.NewTicker(pacerTick(cfg))
	defer tick.Stop()
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		due := base + uint64(now.Sub(start).Seconds()*cfg.Rate) + 1
		if due > seq+1 {
			if behind := due - seq - 1; behind > c.backlog.Load() {
				c.backlog.Store(behind)
			}
		}
		for n := 0; seq < due; n++ {
			if n&63 == 63 && (ctx.Err() != nil || !time.Now().Before(end)) {
				return
			}
			if !write() {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// counts sums the live counters.
func counts(clients []*client) (sent, others, self uint64) {
	for _, c := range clients {
		sent += c.sent.Load()
		others += c.recvOthers.Load()
		self += c.recvSelf.Load()
	}
	return
}

// expected is the number of deliveries the server owes: each message once
// to every connected client of its room, less the sender unless the server
// echoes.
func expected(clients []*client, connected []int, echo bool) uint64 {
	var e uint64
	for _, c := range clients {
		n := uint64(connected[c.room])
		if !echo && n > 0 {
			n--
		}
		e += c.sent.Load() * n
	}
	return e
}

func connectedPerRoom(clients []*client, rooms int) []int {
	n := make([]int, rooms)
	for _, c := range clients {
		if c.conn != nil {
			n[c.room]++
		}
	}
	return n
}

func echoOn(mode string, selfRecv uint64) bool {
	switch mode {
	case "true":
		return true
	case "false":
		return false
	}
	return selfRecv > 0
}

// drain waits, at most cfg.Timeout, until every expected delivery has
// arrived, every connection has ended, or ctx is done. It returns whether
// the server echoes.
func drain(ctx context.Context, cfg Config, clients []*client) bool {
	connected := connectedPerRoom(clients, cfg.Rooms)
	deadline := time.Now().Add(cfg.Timeout)
	for {
		_, others, self := counts(clients)
		echo := echoOn(cfg.Echo, self)
		got := others
		if echo {
			got += self
		}
		if (got >= expected(clients, connected, echo) && (!cfg.Ack || allAnswered(clients))) || !time.Now().Before(deadline) || ctx.Err() != nil || allDone(clients) {
			return echo
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allAnswered reports whether every message written has been acked or
// refused.
func allAnswered(clients []*client) bool {
	for _, c := range clients {
		if c.acked.Load()+c.nacked.Load() < c.sent.Load() {
			return false
		}
	}
	return true
}

func allDone(clients []*client) bool {
	for _, c := range clients {
		select {
		case <-c.done:
		default:
			return false
		}
	}
	return true
}

// closeAll closes every connection with 1000 and waits up to five seconds
// for the read sides to end, then stops the read loops and closes what is
// left. It may be called more than once.
func closeAll(clients []*client, loops []*epollLoop) {
	for _, c := range clients {
		if c.conn != nil && !c.quit.Swap(true) {
			c.conn.CloseNormal()
		}
	}
	timeout := time.After(5 * time.Second)
	for _, c := range clients {
		select {
		case <-c.done:
		case <-timeout:
			// Stop the loops first: no read may race with a closed (and
			// reused) descriptor.
			for _, l := range loops {
				l.shutdown()
			}
			for _, c := range clients {
				if c.conn != nil {
					c.conn.Abort()
				}
				if loops != nil {
					c.finish()
				}
			}
			return
		}
	}
}

// collect merges the per-connection counts into res.
func collect(cfg Config, clients []*client, echo bool, win *window, res *Result) {
	connected := connectedPerRoom(clients, cfg.Rooms)
	lat, ackLat := newHist(), newHist()
	var inWindow, ackInWindow uint64
	for _, c := range clients {
		res.Sent += c.sent.Load()
		res.SendErrors += c.sendErrors.Load()
		res.SenderBacklog = max(res.SenderBacklog, c.backlog.Load())
		res.Received += c.recvOthers.Load()
		if echo {
			res.Received += c.recvSelf.Load()
		}
		res.Duplicates += c.dup
		res.OutOfOrder += c.ooo
		res.WrongRoom += c.wrongRoom
		res.Foreign += c.foreign
		res.OtherFrames += c.other
		res.ErrorFrames += c.errFrames
		if res.FirstError == "" {
			res.FirstError = c.firstErr
		}
		inWindow += c.inWindow
		lat.merge(c.lat)
		res.Frames += c.frames
		res.SeqFrames += c.seqFrames
		if echo || c.local >= cfg.Senders {
			// A server that does not echo skips each sender's own
			// messages: seq gaps only for the connections that send.
			res.SeqGaps += c.seqGaps
		}
		res.SeqDups += c.seqDups
		if cfg.Ack {
			res.Acked += c.acked.Load()
			res.Nacked += c.nacked.Load()
			res.AckDups += c.ackDup
			if sent, answered := c.sent.Load(), c.acked.Load()+c.nacked.Load(); sent > answered {
				res.Unacked += sent - answered
			}
			ackInWindow += c.ackInWindow
			ackLat.merge(c.ackLat)
		}
	}
	if cfg.Ack {
		if window := time.Duration(win.to.Load() - win.from.Load()); window > 0 {
			res.AckedPerS = round2(float64(ackInWindow) / window.Seconds())
		}
		res.AckN = ackLat.n
		res.AckP50 = ms(ackLat.quantile(0.50))
		res.AckP90 = ms(ackLat.quantile(0.90))
		res.AckP99 = ms(ackLat.quantile(0.99))
		res.AckP999 = ms(ackLat.quantile(0.999))
		if ackLat.n > 0 {
			res.AckMax = ms(int64(ackLat.max))
		}
	}
	res.Echo = echo
	res.Expected = expected(clients, connected, echo)
	res.LostSamples = lostSamples(cfg, clients, echo, 5)
	if res.Expected > res.Received {
		res.Lost = res.Expected - res.Received
	}
	fanout := 0.0
	nSenders := 0
	for r, n := range connected {
		_ = r
		k := min(cfg.Senders, n)
		nSenders += k
		f := n
		if !echo && f > 0 {
			f--
		}
		fanout += float64(k * f)
	}
	res.OfferedPerS = round2(fanout * cfg.Rate)
	window := time.Duration(win.to.Load() - win.from.Load())
	if window > 0 {
		res.DeliveredPerS = round2(float64(inWindow) / window.Seconds())
	}
	res.LatN = lat.n
	res.LatP50 = ms(lat.quantile(0.50))
	res.LatP90 = ms(lat.quantile(0.90))
	res.LatP99 = ms(lat.quantile(0.99))
	res.LatP999 = ms(lat.quantile(0.999))
	if lat.n > 0 {
		res.LatMax = ms(int64(lat.max))
	}
	res.LatMean = ms(lat.mean())
}

// warnings explains results that need care.
func warnings(cfg Config, res *Result) []string {
	var w []string
	share := 100 * float64(res.CPUs) / 2 // chatbench's fair half of the machine
	if cfg.PID == 0 {
		share = 100 * float64(res.CPUs)
	}
	if res.BenchCPU >= 0.8*share {
		w = append(w, fmt.Sprintf("chatbench itself used %.0f%% CPU, at least 80%% of its share (%.0f%%) of the %d cores it shares with the server: the load generator may be the bottleneck", res.BenchCPU, share, res.CPUs))
	}
	if res.MachineCPU >= 0.9*100*float64(res.CPUs) {
		w = append(w, fmt.Sprintf("the machine's %d cores were saturated (%.0f%% busy: server %.0f%%, chatbench %.0f%%, other processes %.0f%%, softirq %.0f%%): a faster server could not show it here",
			res.CPUs, res.MachineCPU, res.ServerCPU, res.BenchCPU, res.OtherCPU, res.SoftIRQ))
	}
	if res.OtherCPU >= 20 {
		w = append(w, fmt.Sprintf("other processes used at least %.0f%% CPU during the run: the numbers are disturbed", res.OtherCPU))
	}
	if !cfg.Idle && res.SenderBacklog > uint64(cfg.Rate/10)+1 {
		w = append(w, fmt.Sprintf("senders fell up to %d messages behind schedule: writes blocked (the server did not read fast enough, or chatbench is saturated); the offered rate was not reached", res.SenderBacklog))
	}
	if res.ConnsFailed > 0 {
		w = append(w, fmt.Sprintf("%d connections failed", res.ConnsFailed))
	}
	if res.ConnsDropped > 0 {
		w = append(w, fmt.Sprintf("%d connections were closed by the server during the run (their missed messages count as lost)", res.ConnsDropped))
	}
	if res.SeqGaps > 0 || res.SeqDups > 0 {
		w = append(w, fmt.Sprintf("room seqs: %d never received, %d received again: the server skipped or repeated messages of a room", res.SeqGaps, res.SeqDups))
	}
	if cfg.Ack && (res.Unacked > 0 || res.Nacked > 0 || res.AckDups > 0) {
		w = append(w, fmt.Sprintf("acks: %d messages were refused and %d never answered; %d acked twice", res.Nacked, res.Unacked, res.AckDups))
	}
	if s := res.Storm; s != nil && s.Failed > 0 {
		w = append(w, fmt.Sprintf("%d clients could not reconnect after the restart", s.Failed))
	}
	if !cfg.Idle && res.Sent > 0 && res.Received == 0 {
		w = append(w, "no message came back: check -path, -origin and the server's logs")
	}
	return w
}

// sleepCtx sleeps for d or until ctx is done, and reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func ms(ns int64) float64 { return round3(float64(ns) / 1e6) }

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// lostSamples lists up to n deliveries that never arrived, to tell a
// server's systematic loss (the first message, the last one, one client)
// from random loss.
func lostSamples(cfg Config, clients []*client, echo bool, n int) []string {
	byRoom := make([][]*client, cfg.Rooms)
	for _, c := range clients {
		if c.local < cfg.Senders {
			byRoom[c.room] = append(byRoom[c.room], c)
		}
	}
	var out []string
	for _, rc := range clients {
		if rc.conn == nil {
			continue
		}
		for _, sc := range byRoom[rc.room] {
			if sc == rc && !echo {
				continue
			}
			t := &rc.tracks[sc.local]
			sent := sc.sent.Load()
			for seq := uint64(0); seq < sent; seq++ {
				w := int(seq >> 6)
				if w < len(t.seen) && t.seen[w]&(1<<(seq&63)) != 0 {
					continue
				}
				out = append(out, fmt.Sprintf("client %d (room %d) missed sender %d seq %d of %d", rc.id, rc.room, sc.id, seq, sent))
				if len(out) >= n {
					return out
				}
			}
		}
	}
	return out
}
