package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/postback-dev/postback/client"
)

// defaultAddr is postback-standalone's gRPC address (pkg/config.Defaults).
const defaultAddr = "127.0.0.1:7070"

// The environment variables postbackctl reads. The TLS client certificate
// variables differ from the server's POSTBACK_TLS_CERT/KEY on purpose: a
// shell that runs a server must not hand its listener's key to the CLI.
const (
	envAddr       = "POSTBACK_ADDR"
	envToken      = "POSTBACK_TOKEN"
	envTLS        = "POSTBACK_TLS"
	envTLSCA      = "POSTBACK_TLS_CA"
	envClientCert = "POSTBACK_CLIENT_CERT"
	envClientKey  = "POSTBACK_CLIENT_KEY"
	envInsecure   = "POSTBACK_INSECURE"
	envOutput     = "POSTBACK_OUTPUT"
	envConfig     = "POSTBACK_CONFIG"
)

// settings are the resolved connection and output settings.
type settings struct {
	Addr     string
	Token    string
	TLS      bool
	TLSCA    string
	TLSCert  string
	TLSKey   string
	Insecure bool
	Output   string
	// Where Output came from (a flag, a variable, the config file), for
	// error messages.
	outputFrom string
}

// app is one invocation of postbackctl.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	// Global flags as parsed.
	flagAddr, flagToken, flagTLSCA, flagTLSCert, flagTLSKey, flagOutput, flagConfig string
	flagTLS, flagInsecure                                                           bool
	rpcTimeout                                                                      time.Duration

	set    settings
	client *client.Client
	// inRun is set once a command's own code runs: an error before that is
	// a usage error (cobra's flag and argument parsing).
	inRun bool
}

// run executes postbackctl with args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if a.client != nil {
		_ = a.client.Close()
	}
	if err == nil {
		return exitOK
	}
	code, msg := a.classify(err)
	fmt.Fprintf(stderr, "postbackctl: %s\n", msg)
	if code == exitUsage && !a.inRun {
		path := "postbackctl"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "postbackctl",
		Short: "Command line of the Postback API",
		Long: `postbackctl talks to a Postback gateway over gRPC (docs/api.md).

Connection settings: flag > environment > config file > default.
  --addr      POSTBACK_ADDR         addr       gRPC address (default ` + defaultAddr + `)
  --token     POSTBACK_TOKEN        token      API token (never printed)
  --tls       POSTBACK_TLS          tls        use TLS with the system roots
  --tls-ca    POSTBACK_TLS_CA       tls_ca     PEM CA bundle to verify the server (implies TLS)
  --tls-cert  POSTBACK_CLIENT_CERT  tls_cert   PEM client certificate for mutual TLS (implies TLS)
  --tls-key   POSTBACK_CLIENT_KEY   tls_key    PEM key of the client certificate
  --insecure  POSTBACK_INSECURE     insecure   plaintext whatever the address
  --output    POSTBACK_OUTPUT       output     table, json or yaml
  --config    POSTBACK_CONFIG                  config file (default $XDG_CONFIG_HOME/postback/config.yaml)
The config file is YAML with the keys above ("addr: postback.internal:7070");
its relative paths are relative to its folder. Without --tls or --insecure
the connection is plaintext to a loopback address and TLS with the system
roots otherwise.

Exit codes: 0 ok; 1 server or other error; 2 usage or bad input (the message
names the flag, field or line); 3 not found; 4 unauthenticated or permission
denied.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.flagAddr, "addr", defaultAddr, "gRPC address of the Postback gateway ($"+envAddr+")")
	pf.StringVar(&a.flagToken, "token", "", "API token ($"+envToken+"); never printed")
	pf.BoolVar(&a.flagTLS, "tls", false, "use TLS ($"+envTLS+")")
	pf.StringVar(&a.flagTLSCA, "tls-ca", "", "PEM CA bundle to verify the server; implies --tls ($"+envTLSCA+")")
	pf.StringVar(&a.flagTLSCert, "tls-cert", "", "PEM client certificate for mutual TLS; implies --tls ($"+envClientCert+")")
	pf.StringVar(&a.flagTLSKey, "tls-key", "", "PEM private key of --tls-cert ($"+envClientKey+")")
	pf.BoolVar(&a.flagInsecure, "insecure", false, "plaintext connection whatever the address ($"+envInsecure+")")
	pf.StringVarP(&a.flagOutput, "output", "o", "table", "output format: table, json or yaml ($"+envOutput+")")
	pf.StringVar(&a.flagConfig, "config", "", "config file (default $XDG_CONFIG_HOME/postback/config.yaml; $"+envConfig+")")
	pf.DurationVar(&a.rpcTimeout, "rpc-timeout", 30*time.Second, "deadline of each API call")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(a.eventTypesCommand(), a.endpointsCommand(), a.eventsCommand(), a.deliveriesCommand())
	// cobra's completion command (bash, zsh, fish, powershell), made now so
	// that an unknown shell is a usage error like any unknown command.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			group(c)
		}
	}
	return root
}

// group makes a command of subcommands refuse an unknown subcommand (exit
// 2); alone it prints its help. (cobra itself answers an unknown
// subcommand of a non-root command with the help and exit 0.)
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("unknown command %q for %q", args[0], c.CommandPath())
		}
		return c.Help()
	}
	return cmd
}

// runE wraps a command's code: it resolves the settings first and marks
// that parsing is over (later errors are classified by what they are).
func (a *app) runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.inRun = true
		if err := a.resolve(cmd); err != nil {
			return err
		}
		return fn(cmd, args)
	}
}

// fileConfig is the config file's content.
type fileConfig struct {
	Addr, Token, TLSCA, TLSCert, TLSKey, Output string
	TLS, Insecure                               *bool
	path                                        string
}

// defaultConfigPath is $XDG_CONFIG_HOME/postback/config.yaml (or
// ~/.config/postback/config.yaml).
func (a *app) defaultConfigPath() string {
	dir := a.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := a.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "postback", "config.yaml")
}

// loadConfig reads the config file: the one named by --config or
// POSTBACK_CONFIG must exist; the default one may not.
func (a *app) loadConfig(cmd *cobra.Command) (fileConfig, error) {
	path, named := "", ""
	switch {
	case cmd.Flags().Changed("config"):
		path, named = a.flagConfig, "--config"
	case a.getenv(envConfig) != "":
		path, named = a.getenv(envConfig), envConfig
	default:
		path = a.defaultConfigPath()
	}
	fc := fileConfig{path: path}
	if path == "" {
		return fc, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if named == "" && errors.Is(err, os.ErrNotExist) {
			return fc, nil
		}
		if named != "" {
			return fc, usageErrorf("%s: %v", named, err)
		}
		return fc, usageErrorf("config file: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fc, usageErrorf("config file %s: %v", path, err)
	}
	if len(doc.Content) == 0 { // empty file
		return fc, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fc, usageErrorf("config file %s: line %d: want a mapping of settings (addr, token, tls, tls_ca, tls_cert, tls_key, insecure, output)", path, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		str := func(dst *string) error {
			if v.Kind != yaml.ScalarNode {
				return usageErrorf("config file %s: line %d: %s: want a string", path, v.Line, k.Value)
			}
			*dst = v.Value
			return nil
		}
		boolean := func(dst **bool) error {
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				return usageErrorf("config file %s: line %d: %s: want true or false", path, v.Line, k.Value)
			}
			*dst = &b
			return nil
		}
		var err error
		switch strings.ReplaceAll(k.Value, "-", "_") {
		case "addr":
			err = str(&fc.Addr)
		case "token":
			err = str(&fc.Token)
		case "tls":
			err = boolean(&fc.TLS)
		case "tls_ca":
			err = str(&fc.TLSCA)
			fc.TLSCA = nextTo(path, fc.TLSCA)
		case "tls_cert":
			err = str(&fc.TLSCert)
			fc.TLSCert = nextTo(path, fc.TLSCert)
		case "tls_key":
			err = str(&fc.TLSKey)
			fc.TLSKey = nextTo(path, fc.TLSKey)
		case "insecure":
			err = boolean(&fc.Insecure)
		case "output":
			err = str(&fc.Output)
		default:
			err = usageErrorf("config file %s: line %d: unknown setting %q (want addr, token, tls, tls_ca, tls_cert, tls_key, insecure, output)", path, k.Line, k.Value)
		}
		if err != nil {
			return fc, err
		}
	}
	return fc, nil
}

// nextTo resolves a path of the config file relative to its folder.
func nextTo(configPath, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configPath), p)
}

// resolve fills a.set: flag > environment > config file > default.
func (a *app) resolve(cmd *cobra.Command) error {
	fc, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	changed := cmd.Flags().Changed
	pickStr := func(flag, flagVal, env, fileVal, def string) (string, string) {
		switch {
		case changed(flag):
			return flagVal, "--" + flag
		case strings.TrimSpace(a.getenv(env)) != "":
			return strings.TrimSpace(a.getenv(env)), env
		case fileVal != "":
			return fileVal, "config file " + fc.path
		}
		return def, "--" + flag
	}
	pickBool := func(flag string, flagVal bool, env string, fileVal *bool) (bool, error) {
		switch {
		case changed(flag):
			return flagVal, nil
		case strings.TrimSpace(a.getenv(env)) != "":
			b, err := strconv.ParseBool(strings.TrimSpace(a.getenv(env)))
			if err != nil {
				return false, usageErrorf("%s: want true or false, got %q", env, a.getenv(env))
			}
			return b, nil
		case fileVal != nil:
			return *fileVal, nil
		}
		return false, nil
	}
	s := settings{}
	s.Addr, _ = pickStr("addr", a.flagAddr, envAddr, fc.Addr, defaultAddr)
	s.Token, _ = pickStr("token", a.flagToken, envToken, fc.Token, "")
	s.TLSCA, _ = pickStr("tls-ca", a.flagTLSCA, envTLSCA, fc.TLSCA, "")
	s.TLSCert, _ = pickStr("tls-cert", a.flagTLSCert, envClientCert, fc.TLSCert, "")
	s.TLSKey, _ = pickStr("tls-key", a.flagTLSKey, envClientKey, fc.TLSKey, "")
	s.Output, s.outputFrom = pickStr("output", a.flagOutput, envOutput, fc.Output, "table")
	if s.TLS, err = pickBool("tls", a.flagTLS, envTLS, fc.TLS); err != nil {
		return err
	}
	if s.Insecure, err = pickBool("insecure", a.flagInsecure, envInsecure, fc.Insecure); err != nil {
		return err
	}
	s.Output = strings.ToLower(strings.TrimSpace(s.Output))
	switch s.Output {
	case "table", "json", "yaml":
	case "yml":
		s.Output = "yaml"
	default:
		return usageErrorf("%s: unknown output format %q (want table, json or yaml)", outputName(s.outputFrom), s.Output)
	}
	if strings.TrimSpace(s.Addr) == "" {
		return usageErrorf("--addr: empty address")
	}
	if a.rpcTimeout <= 0 {
		return usageErrorf("--rpc-timeout: want a positive duration, got %s", a.rpcTimeout)
	}
	a.set = s
	return nil
}

// outputName names where the output format came from: "--output" for the
// flag (and its shorthand -o).
func outputName(from string) string {
	if from == "--output" {
		return "--output (-o)"
	}
	return from + ": output"
}

// clientOptions turns the settings into client options.
func (a *app) clientOptions() ([]client.Option, error) {
	s := a.set
	var opts []client.Option
	if s.Token != "" {
		opts = append(opts, client.WithToken(s.Token))
	}
	useTLS := s.TLS || s.TLSCA != "" || s.TLSCert != "" || s.TLSKey != ""
	if s.Insecure && useTLS {
		return nil, usageErrorf("--insecure (plaintext) conflicts with TLS (--tls, --tls-ca, --tls-cert or --tls-key, or their variables or config settings)")
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.TLSCA != "" {
			pem, err := os.ReadFile(s.TLSCA)
			if err != nil {
				return nil, usageErrorf("--tls-ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, usageErrorf("--tls-ca: %s holds no PEM certificate", s.TLSCA)
			}
			cfg.RootCAs = pool
		}
		if (s.TLSCert == "") != (s.TLSKey == "") {
			return nil, usageErrorf("--tls-cert and --tls-key go together")
		}
		if s.TLSCert != "" {
			pair, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
			if err != nil {
				return nil, usageErrorf("--tls-cert/--tls-key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	if s.Insecure {
		opts = append(opts, client.WithInsecure())
		if s.Token != "" && !isLoopback(s.Addr) {
			fmt.Fprintf(a.stderr, "postbackctl: warning: --insecure sends the token in clear to %s\n", s.Addr)
		}
	}
	return opts, nil
}

// connect returns the client, made on first use.
func (a *app) connect() (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	opts, err := a.clientOptions()
	if err != nil {
		return nil, err
	}
	c, err := client.New(a.ctx, a.set.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a.set.Addr, err)
	}
	a.client = c
	return c, nil
}

// call is the context of one API call: the command's, with --rpc-timeout.
func (a *app) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.ctx, a.rpcTimeout)
}

// unary makes one API call on the connection (made on first use), within
// --rpc-timeout.
func unary[T any](a *app, call func(ctx context.Context, c *client.Client) (T, error)) (T, error) {
	c, err := a.connect()
	if err != nil {
		var zero T
		return zero, err
	}
	ctx, cancel := a.call()
	defer cancel()
	return call(ctx, c)
}

// pages calls list for the page at token, and with all for every page
// after it until the last, each call within --rpc-timeout. list returns the
// next page's token ("" after the last page).
func (a *app) pages(all bool, token string, list func(ctx context.Context, c *client.Client, token string) (next string, err error)) error {
	for {
		next, err := unary(a, func(ctx context.Context, c *client.Client) (string, error) { return list(ctx, c, token) })
		if err != nil || !all || next == "" {
			return err
		}
		token = next
	}
}

// flagChanged reports whether any of the flags was given.
func flagChanged(fs *pflag.FlagSet, names ...string) bool {
	for _, n := range names {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}

// isLoopback reports whether addr's host is a loopback address.
func isLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
