package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
)

// proc is a child process whose CPU time and memory the bench reads from /proc.
type proc struct {
	name   string
	cmd    *exec.Cmd
	pprof  string        // base URL of its /debug/pprof/ handlers ("": not profiled)
	log    string        // the file of its stdout and stderr
	exited chan struct{} // closed once it has exited (and been waited for)
}

func startProc(name, bin string, args, env []string, logDir string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail is the last lines of the process's log, for an error message.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// cpu is the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// peakRSS is the process's high-water resident memory in bytes.
func (p *proc) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady waits for p's /readyz on httpAddr to answer 200; it fails at
// once when p exits first (a port picked by freeAddr can be taken by
// someone else before p binds it), and after 60 s, with p's last log lines.
func waitReady(ctx context.Context, p *proc, httpAddr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready on %s; its log ends:\n%s", p.name, httpAddr, p.logTail())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready on %s within 60s; its log ends:\n%s", p.name, httpAddr, p.logTail())
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not accepting connections within 30s", addr)
}

func secretKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "k1:" + base64.StdEncoding.EncodeToString(b)
}

// deployment is Postback running in one of the two shapes.
type deployment struct {
	shape    string
	grpcAddr string
	// natsURL is the deployment's NATS server, for the scenarios that put
	// messages on its streams themselves ("": not known).
	natsURL string
	procs   []*proc
}

func (d *deployment) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
}

func (d *deployment) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range d.procs {
		out[p.name] += p.cpu()
	}
	return out
}

const token = "bench-operator-token"

func commonEnv() []string {
	return []string{"POSTBACK_ALLOW_CIDRS=127.0.0.1/32", "POSTBACK_TOKENS=" + token + "=*", "POSTBACK_LOG_LEVEL=warn"}
}

// startShape starts a deployment of shape ("standalone" or
// "multi-process") in dir. A start that fails (most often a free port
// taken by another socket before the process bound it) is tried again, up
// to twice, in a fresh directory with fresh ports.
func startShape(ctx context.Context, shape, bin, redisBin, dir string, pprof bool, extraEnv ...string) (*deployment, error) {
	var err error
	for try := 1; try <= 3; try++ {
		work := dir
		if try > 1 {
			progress("warning: %s did not start (%v); trying again with other ports", shape, err)
			work = filepath.Join(dir, fmt.Sprintf("retry-%d", try))
			if err := os.MkdirAll(work, 0o755); err != nil {
				return nil, err
			}
		}
		var d *deployment
		switch shape {
		case "standalone":
			d, err = startStandalone(ctx, bin, work, pprof, extraEnv...)
		case "multi-process":
			d, err = startCluster(ctx, bin, redisBin, work, pprof, extraEnv...)
		default:
			return nil, fmt.Errorf("unknown shape %q", shape)
		}
		if err == nil || ctx.Err() != nil {
			return d, err
		}
	}
	return nil, err
}

// startStandalone runs bin/postback-standalone: embedded NATS, in-process
// limiter; with pprof, /debug/pprof/ on its HTTP address.
func startStandalone(ctx context.Context, bin, work string, pprof bool, extraEnv ...string) (*deployment, error) {
	grpcAddr, httpAddr := freeAddr(), freeAddr()
	env := append(commonEnv(), "POSTBACK_GRPC_ADDR="+grpcAddr, "POSTBACK_HTTP_ADDR="+httpAddr,
		"POSTBACK_DATA_DIR="+filepath.Join(work, "standalone-data"))
	env = append(env, extraEnv...)
	if pprof {
		env = append(env, "POSTBACK_PPROF=true")
	}
	p, err := startProc("standalone", filepath.Join(bin, "postback-standalone"), nil, env, work)
	if err != nil {
		return nil, err
	}
	if pprof {
		p.pprof = "http://" + httpAddr + "/debug/pprof"
	}
	d := &deployment{shape: "standalone", grpcAddr: grpcAddr, procs: []*proc{p}}
	if err := waitReady(ctx, p, httpAddr); err != nil {
		d.stop()
		return nil, err
	}
	d.natsURL, err = embeddedNATSURL(ctx, p.log, filepath.Join(work, "standalone-data"))
	if err != nil {
		progress("warning: standalone: the embedded NATS server's URL is not known (%v): the scenarios that need it are skipped", err)
	}
	return d, nil
}

// embeddedNATSURL reads the URL of standalone's embedded NATS server (a
// free port, picked at start) from the line postback-standalone prints on
// stdout once every service is serving, "postback <version> ready: grpc
// <addr>, http <addr>, nats <url>": standalone exposes it nowhere else but
// in its info log, which the bench turns off. The line's URL names the
// admin user with its password redacted; the password is read from the
// data dir's credentials file, as an operator would. That line may come a
// moment after /readyz answers, so the log is read again for up to 10 s.
// Only a loopback URL is taken: the bench sends nothing anywhere else.
func embeddedNATSURL(ctx context.Context, logPath, dataDir string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, " ready: grpc ") {
				continue
			}
			_, raw, ok := strings.Cut(line, ", nats ")
			u, err := url.Parse(strings.TrimSpace(raw))
			if !ok || err != nil || u.Scheme != "nats" || u.Hostname() != "127.0.0.1" {
				return "", fmt.Errorf("the ready line names no loopback NATS URL")
			}
			if u.User != nil {
				creds, err := broker.LoadOrCreateCredentials(dataDir)
				if err != nil {
					return "", err
				}
				u.User = url.UserPassword(u.User.Username(), creds[u.User.Username()])
			}
			return u.String(), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no ready line in %s within 10s", logPath)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startCluster runs one nats-server, one Redis and the four services as
// separate processes; with pprof, the services serve /debug/pprof/ on their
// HTTP addresses and nats-server on a profiling port of its own (Redis is
// not profiled).
func startCluster(ctx context.Context, bin, redisBin, work string, pprof bool, extraEnv ...string) (*deployment, error) {
	d := &deployment{shape: "multi-process"}
	natsAddr := freeAddr()
	d.natsURL = "nats://" + natsAddr
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	natsArgs := []string{"-js", "-a", "127.0.0.1", "-p", natsPort, "-sd", filepath.Join(work, "nats")}
	var natsProf string
	if pprof {
		natsProf = freeAddr() // -a binds the profiling port to 127.0.0.1 too
		_, profPort, _ := net.SplitHostPort(natsProf)
		natsArgs = append(natsArgs, "--profile", profPort)
	}
	nats, err := startProc("nats-server", filepath.Join(bin, "nats-server"), natsArgs, nil, work)
	if err != nil {
		return nil, err
	}
	if pprof {
		nats.pprof = "http://" + natsProf + "/debug/pprof"
	}
	d.procs = append(d.procs, nats)
	redisAddr := freeAddr()
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	redis, err := startProc("redis-server", redisBin,
		[]string{"--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work}, nil, work)
	if err != nil {
		d.stop()
		return nil, err
	}
	d.procs = append(d.procs, redis)
	if err := waitTCP(natsAddr); err != nil {
		d.stop()
		return nil, err
	}
	if err := waitTCP(redisAddr); err != nil {
		d.stop()
		return nil, err
	}
	// The services' data dir (the gateway and the history writer share the
	// embedded history store there) is the run's own: left to its default,
	// ./data, it was the checkout's, and every run's history piled up in it.
	env := append(commonEnv(), "POSTBACK_NATS_URL=nats://"+natsAddr, "POSTBACK_REDIS_URL=redis://"+redisAddr,
		"POSTBACK_SECRET_KEY="+secretKey(), "POSTBACK_JOB_KEY="+secretKey(), "POSTBACK_DATA_DIR="+filepath.Join(work, "cluster-data"))
	env = append(env, extraEnv...)
	if pprof {
		env = append(env, "POSTBACK_PPROF=true")
	}
	d.grpcAddr = freeAddr()
	var ready []string
	svcs := []string{"gateway", "renderer", "sender", "retry"}
	if _, err := os.Stat(filepath.Join(bin, "postback-historian")); err == nil {
		svcs = append(svcs, "historian") // builds before the history store have none
	}
	for _, svc := range svcs {
		httpAddr := freeAddr()
		e := append(append([]string{}, env...), "POSTBACK_HTTP_ADDR="+httpAddr, "POSTBACK_GRPC_ADDR="+d.grpcAddr)
		p, err := startProc(svc, filepath.Join(bin, "postback-"+svc), nil, e, work)
		if err != nil {
			d.stop()
			return nil, err
		}
		if pprof {
			p.pprof = "http://" + httpAddr + "/debug/pprof"
		}
		d.procs = append(d.procs, p)
		ready = append(ready, httpAddr)
	}
	for i, a := range ready {
		if err := waitReady(ctx, d.procs[len(d.procs)-len(ready)+i], a); err != nil {
			d.stop()
			return nil, err
		}
	}
	if err := waitTCP(d.grpcAddr); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// profileSeconds is the length of the CPU profile taken from every process
// when a burst starts publishing (a burst of 20,000 events takes 4-5 s).
const profileSeconds = 3

var profileClient = &http.Client{Timeout: (profileSeconds + 30) * time.Second}

// profile starts a CPU profile of every process that serves pprof, at once
// and concurrently, and returns a func that waits for them and then takes
// each process's allocation profile (cumulative since it started). They are
// written to dir/<shape>-<scenario>-<process>.cpu.pprof and .allocs.pprof. A
// failed fetch is a warning, never an error of the run.
func (d *deployment) profile(dir, scenario string) (done func()) {
	prefix := filepath.Join(dir, d.shape+"-"+scenario+"-")
	var wg sync.WaitGroup
	cpu := make([]bool, len(d.procs)) // written
	for i, p := range d.procs {
		if p.pprof == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cpu[i] = fetchProfile(p.name, fmt.Sprintf("%s/profile?seconds=%d", p.pprof, profileSeconds), prefix+p.name+".cpu.pprof")
		}()
	}
	return func() {
		wg.Wait()
		var names []string
		for i, p := range d.procs {
			if p.pprof == "" {
				continue
			}
			if fetchProfile(p.name, p.pprof+"/allocs", prefix+p.name+".allocs.pprof") && cpu[i] {
				names = append(names, p.name)
			}
		}
		if len(names) == 0 {
			names = []string{"no process"}
		}
		progress("%s: %s: profiles (CPU for %d s from the start of publishing, allocations) of %s written to %s*.pprof",
			d.shape, scenario, profileSeconds, strings.Join(names, ", "), prefix)
	}
}

// fetchProfile writes the profile at url to path, or prints a warning and
// returns false.
func fetchProfile(name, url, path string) bool {
	err := func() error {
		resp, err := profileClient.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		if len(b) == 0 {
			return errors.New("empty profile")
		}
		return os.WriteFile(path, b, 0o644)
	}()
	if err != nil {
		progress("warning: %s: profile %s not written: %v", name, filepath.Base(path), err)
		return false
	}
	return true
}

// jetStream connects to the deployment's NATS server as name, for the
// scenarios and reports that read or put messages there; close ends the
// connection. An error when the server's URL is not known or it cannot be
// reached.
func (b *bench) jetStream(name string) (js jetstream.JetStream, close func(), err error) {
	if b.natsURL == "" {
		return nil, nil, errors.New("the URL of the deployment's NATS server is not known")
	}
	nc, err := nats.Connect(b.natsURL, nats.Name(name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", b.natsURL, err)
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
