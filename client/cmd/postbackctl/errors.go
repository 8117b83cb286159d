package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes a script can rely on.
const (
	exitOK       = 0
	exitError    = 1 // a server error, a network error, anything else
	exitUsage    = 2 // bad flags, arguments or input
	exitNotFound = 3
	exitDenied   = 4 // unauthenticated or permission denied
)

// exitErr is an error with its exit code.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// usageError marks err as bad usage or bad input (exit 2).
func usageError(err error) error { return &exitErr{code: exitUsage, err: err} }

func usageErrorf(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

// failed is a plain failure (exit 1) whose message is already for a person.
func failedf(format string, args ...any) error {
	return &exitErr{code: exitError, err: fmt.Errorf(format, args...)}
}

// codeExit maps a gRPC code to an exit code.
func codeExit(c codes.Code) int {
	switch c {
	case codes.OK:
		return exitOK
	case codes.InvalidArgument, codes.OutOfRange:
		return exitUsage
	case codes.NotFound:
		return exitNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		return exitDenied
	}
	return exitError
}

// codeText is a code in words: "invalid argument", "not found".
func codeText(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// classify returns the exit code and the message of err.
func (a *app) classify(err error) (int, string) {
	var ee *exitErr
	if errors.As(err, &ee) {
		if st, ok := grpcStatus(ee.err); ok {
			return ee.code, a.statusMessage(st)
		}
		return ee.code, ee.Error()
	}
	if st, ok := grpcStatus(err); ok {
		return codeExit(st.Code()), a.statusMessage(st)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return exitError, fmt.Sprintf("%v (each call has --rpc-timeout %s)", err, a.rpcTimeout)
	}
	if errors.Is(err, context.Canceled) {
		return exitError, "interrupted"
	}
	if !a.inRun { // cobra's own parsing: unknown command, wrong arguments
		return exitUsage, err.Error()
	}
	return exitError, err.Error()
}

// grpcStatus returns err's gRPC status when it carries one.
func grpcStatus(err error) (*status.Status, bool) {
	if err == nil {
		return nil, false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	return se.GRPCStatus(), true
}

// statusMessage is a gRPC error for a person: the code in words and the
// server's message (which names the field for InvalidArgument).
func (a *app) statusMessage(st *status.Status) string {
	msg := codeText(st.Code()) + ": " + st.Message()
	switch st.Code() {
	case codes.Unavailable:
		msg += fmt.Sprintf(" (server %s)", a.set.Addr)
	case codes.DeadlineExceeded:
		msg += fmt.Sprintf(" (each call has --rpc-timeout %s)", a.rpcTimeout)
	}
	return msg
}

// prefixed prefixes err's message, keeping its gRPC status (and so its exit
// code) when it has one.
func prefixed(prefix string, err error) error {
	if st, ok := grpcStatus(err); ok {
		return status.Error(st.Code(), prefix+st.Message())
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		return &exitErr{code: ee.code, err: fmt.Errorf("%s%w", prefix, ee.err)}
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// errorf is fmt.Errorf (for messages that need no exit code of their own).
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// noArgs refuses positional arguments (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmdName(cmd), args[0])
	}
	return nil
}

// exactArgs wants n positional arguments, named in the message.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s wants %s, got %d arguments", cmdName(cmd), names, len(args))
		}
		return nil
	}
}

// maxArgs wants at most n positional arguments.
func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("%s takes at most %s, got %d arguments", cmdName(cmd), names, len(args))
		}
		return nil
	}
}

// cmdName is the command's path without the program's name.
func cmdName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}
